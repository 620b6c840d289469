"""The two-sided loop: a school invites a suggested partner, the partner accepts or declines, or
the invitation expires. An acceptance starts a partnership (origin "suggested").

The pair must pass the hard rules (matching.constraints.check_pair, both ways round) when the
invitation is sent and again when it is accepted; open invitations hold a place in both schools'
capacity. Check and write run inside ``state.changing()`` (the writer mutex, the Matcher caught up
before and after), so two invitations made at once through one replica cannot both take a
school's last place. (Across replicas the check reads the state the replica caught up on right
before it.)
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from data.errors import NotFound
from data.schema import Invitation, Partnership, School, utcnow
from matching.constraints import RULE_TEXT, PairCheck, Rule, check_pair
from matching.engine import Matcher
from service.errors import ApiError
from service.state import ServiceState

# Rules about the network's state now (could pass later); the others are about the profiles.
STATE_RULES = frozenset({Rule.INACTIVE, Rule.ALREADY_PARTNERS, Rule.AT_CAPACITY})


class PairRefused(ApiError):
    """The pair breaks hard rules: 409 when only the network's state stands in the way, else 422."""

    def __init__(self, inviter: str, invitee: str, rules: list[Rule], full: list[str]) -> None:
        status = 409 if set(rules) <= STATE_RULES else 422
        named = {
            Rule.AT_CAPACITY: f"{' and '.join(full)} {'has' if len(full) == 1 else 'have'} no room for another partner"
        }
        listed = "; ".join(f"{rule.value} ({named.get(rule) or 'a school ' + RULE_TEXT[rule][0]})" for rule in rules)
        super().__init__(
            status,
            f"to_school: {inviter} and {invitee} break hard rule(s): {listed}",
            field="to_school",
            rules=[rule.value for rule in rules],
        )


def pair_check(
    matcher: Matcher, a: School, b: School, holding: Invitation | None = None
) -> tuple[list[Rule], PairCheck]:
    """Every hard rule the pair breaks, seen from both sides (each side's capacity counts), and
    a's view of the pair. `holding`: an open invitation between them whose place is not counted."""
    forward, backward = _verdicts(matcher, a, b, holding)
    return list(dict.fromkeys(forward.violations + backward.violations)), forward


def full_schools(matcher: Matcher, a: School, b: School, holding: Invitation | None = None) -> list[str]:
    """Which of the two has no free place left: the at_capacity rule, as the other side sees it."""
    forward, backward = _verdicts(matcher, a, b, holding)
    return [s.id for s, verdict in ((a, backward), (b, forward)) if Rule.AT_CAPACITY in verdict.violations]


def _verdicts(matcher: Matcher, a: School, b: School, holding: Invitation | None) -> tuple[PairCheck, PairCheck]:
    ctx = matcher.context()
    if holding is not None:
        counted = ctx.pending
        ends = {holding.from_school, holding.to_school}
        ctx = dataclasses.replace(ctx, pending=lambda school_id: counted(school_id) - int(school_id in ends))
    return check_pair(a, b, ctx), check_pair(b, a, ctx)


def _pair(matcher: Matcher, from_school: str, to_school: str) -> tuple[School, School]:
    found = []
    for field, school_id in (("from_school", from_school), ("to_school", to_school)):
        if school_id not in matcher.schools:
            raise ApiError(404, f"{field}: school {school_id!r} not found", field=field)
        found.append(matcher.schools[school_id])
    return found[0], found[1]


def invite(state: ServiceState, from_school: str, to_school: str, message: str | None) -> Invitation:
    with state.changing() as store:
        with state.reading() as matcher:
            a, b = _pair(matcher, from_school, to_school)
            broken, _ = pair_check(matcher, a, b)
            if broken:
                raise PairRefused(from_school, to_school, broken, full_schools(matcher, a, b))
        now = utcnow()
        expires = now + timedelta(days=state.settings.invitation_expiry_days)
        return store.create_invitation(from_school, to_school, message, expires_at=expires, now=now)


def accept(state: ServiceState, invitation_id: str) -> tuple[Invitation, Partnership]:
    """Accept, if the pair still passes the rules; the partnership and the answer commit together."""
    with state.changing() as store:  # caught up also on refusal: an overdue one was marked expired
        current = store.get_invitation(invitation_id)
        modes: list[str] = []
        sdgs: list[int] = []
        if current.is_open(utcnow()):
            with state.reading() as matcher:
                a, b = _pair(matcher, current.from_school, current.to_school)
                broken, view = pair_check(matcher, a, b, holding=current)
                if broken:
                    full = full_schools(matcher, a, b, holding=current)
                    raise PairRefused(current.from_school, current.to_school, broken, full)
            modes = [mode.value for mode in view.usable_modes]
            sdgs = sorted(set(a.sdgs) & set(b.sdgs))
        return store.accept_invitation(invitation_id, modes=modes, sdgs=sdgs)


def decline(state: ServiceState, invitation_id: str, reason: str | None) -> Invitation:
    with state.changing() as store:
        return store.decline_invitation(invitation_id, reason)


def visible_schools(state: ServiceState, invitations: list[Invitation]) -> dict[str, School]:
    """The schools an invitation list names, for their public cards."""
    ids = {i for invitation in invitations for i in (invitation.from_school, invitation.to_school)}
    return state.store.get_schools(ids)


def existing(state: ServiceState, invitation_id: str) -> Invitation:
    """The invitation, after marking overdue ones expired (expiry is lazy on every read)."""
    state.store.expire_invitations()
    try:
        return state.store.get_invitation(invitation_id)
    except NotFound:
        raise ApiError(404, f"invitation {invitation_id!r} not found") from None
