"""A realistic, deterministic world of schools and partnerships to build and judge matching on.

``generate_world(n_schools, seed)`` gives the same world for the same arguments (ids,
timestamps and all: time is derived from the seed, never from the clock). 500 schools suit
tests, 5,000 the demo, 100,000 the benchmarks. With ``real_dir`` the world is built on the real
Taiwanese and Malaysian school directories, and every field the generator filled is listed in
``School.generated_fields``.

The schools
-----------
About 48% are Taiwanese, spread over the 22 counties and their townships in proportion to the
real primary-school counts, with each township's real mix of remoteness categories (偏遠, 特偏,
極偏), levels in the proportions of Taiwan's school system, log-normal enrolment by level and
remoteness (remote schools are small), mostly public ownership, official-style names and, for
most, an English name. The others are abroad: mostly the 18 New Southbound countries, weighted
toward those with the busiest exchange with Taiwan (Malaysia, Vietnam, Thailand, Indonesia, the
Philippines, Australia, India, Singapore...), plus Japan, Korea, the USA and a few more; each in
a real city and ISO 3166-2 region, with the languages schools there teach and exchange in and
named the way schools there are named. Interests follow place and level: 1-3 SDGs with the
popular goals (4, 13, 3, 11, 14, 12) more common and local flavour (coastal schools pick Life
Below Water, rural ones Life on Land and Zero Hunger, vocational ones Decent Work), hidden class
topics that only the description reveals, exchange modes (virtual for almost all; visiting and
hosting rarer, rarer still for remote schools), capacity 1-6, group size, months and targets.

How partnerships arise
----------------------
The history runs month by month from ``start`` to ``end``. Schools join the alliance over time
(``initial_member_share`` were members before ``start``; the rest join at a rate growing by
``yearly_growth`` a year) and only members take part. Each month a number of searches is
planned so that the total reaches ``partnerships_per_taiwanese_school`` per Taiwanese school,
growing by ``yearly_growth`` a year. Every search is made by a Taiwanese school (so every
partnership crosses the border and has a Taiwanese side), drawn in proportion to a hidden
engagement level (log-normal: some schools are simply more active) among members that have
room (fewer active partners than their capacity; a full school searches with probability
``capacity_slack``).

The searching school considers ``candidates`` member schools abroad, drawn from four sources:
its target countries (``from_target_countries``), schools in proportion to their partners so
far (``from_popular``), partners of the schools its own partners work with, found by walking
school -> its partner -> another Taiwanese partner of theirs -> that school's partner
(``from_friends_of_friends``), and the rest uniformly. Schools at capacity and existing partners
are ruled out (a full school stays in with probability ``capacity_slack``). It then picks the
candidate with the highest

    affinity_weight * affinity + popularity_weight * log(1 + partners so far)
    + friend_of_friend_weight * [reached through the partner network] + noise * Gumbel(0, 1),

that is, a draw from a softmax with temperature ``noise``. Profile affinity sums:
``shared_sdg`` per shared SDG, ``shared_topic`` per shared class topic, ``target_country`` if
the partner is in one of the school's target countries, ``wants_taiwan`` if the partner asks
for Taiwan, ``shared_local_language`` for a common exchange language other than English, minus
``no_common_language`` when they share none, ``same_level`` for a common level or
``adjacent_level`` for adjacent ones, and ``visit_hosting_match`` when one visits and the other
hosts. With the defaults affinity dominates (a typical good pair scores 4-7 against 0-2 for a
poor one), popularity adds up to about 2 for the busiest schools, and the noise keeps one pick
in several a surprise. When several schools pick the same partner in one month it takes them
while it has room.

Each partnership starts on a random day of its month and lasts a log-normal time (median
``median_duration_years``); those that finish before ``end`` get an ``end_date`` and free their
capacity from the next month. Its SDGs are one or two the pair shares (else one of either
school's), its modes those the pair has in common (virtual, and visit or hosting when one
school visits and the other hosts), virtual only while borders were closed
(``in_person_pause``). Origin is ``existing``; ids are p-0000000 upward by start date.

All weights are fields of ``PartnershipProcess`` with documented defaults. A second process,
``ProgrammeProcess`` (county programmes, referrals, yearly cohorts; see
:mod:`data.generator.programmes`), builds the history another way, so that no gain measured on
generated data is an artefact of one process.
"""

from data.generator.partnerships import PartnershipProcess
from data.generator.programmes import ProgrammeProcess
from data.generator.world import TAIWAN_SHARE, World, generate_world

PROCESSES = {"affinity": PartnershipProcess, "programmes": ProgrammeProcess}
"""The partnership processes by name (``--process`` on the command line)."""

__all__ = ["PROCESSES", "TAIWAN_SHARE", "PartnershipProcess", "ProgrammeProcess", "World", "generate_world"]
