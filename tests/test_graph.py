"""The partnership graph and its rebalancing signals, on small graphs whose answer is known."""

from __future__ import annotations

import doctest
import math
from collections.abc import Sequence
from datetime import date
from types import ModuleType

import networkx as nx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import graph.build
import graph.clusters
import graph.exposure
import graph.factors
import graph.summary
from data.errors import Conflict, NotFound
from data.schema import Partnership, School
from data.taxonomies import Remoteness
from graph import (
    BridgePath,
    ExposureLedger,
    InvitationCounts,
    active_partners,
    add_partnership,
    build_partnership_graph,
    cluster_boost,
    cluster_bridges,
    country_diversity_factor,
    cross_border_clusters,
    end_partnership,
    equity_boost,
    exposure_factor,
    gini,
    graph_summary,
    load,
    partner_countries,
    responsiveness_factor,
    saturation_factor,
    update_school,
)

START = date(2024, 9, 1)


def school(school_id: str, country: str | None = None, **fields: object) -> School:
    """A minimal valid school; the country defaults to the id's prefix (tw-a -> TW)."""
    return School(
        id=school_id, name_en=school_id, country=country or school_id[:2].upper(), levels=["primary"], **fields
    )


def partnership(a: str, b: str, pid: str | None = None, **fields: object) -> Partnership:
    return Partnership(
        id=pid or f"{a}+{b}", school_a=a, school_b=b, start_date=fields.pop("start_date", START), **fields
    )


def graph_of(schools: list[School], pairs: list[tuple[str, str]], **kwargs: bool) -> nx.Graph:
    return build_partnership_graph(schools, [partnership(a, b) for a, b in pairs], **kwargs)


# --------------------------------------------------------------------------- doctests


@pytest.mark.parametrize("module", [graph.build, graph.factors, graph.clusters, graph.summary, graph.exposure])
def test_doctests_pass(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------- build


def test_build_keeps_lonely_schools_and_records_attributes() -> None:
    schools = [
        school("tw-a", region="臺東縣", remoteness="extremely_remote", capacity=5),
        school("vn-x"),
        school("th-z", active=False),
    ]
    p = partnership("tw-a", "vn-x", modes=["visit", "virtual"], sdgs=[13, 4])
    G = build_partnership_graph(schools, [p])

    assert set(G.nodes) == {"tw-a", "vn-x", "th-z"}
    assert G.nodes["tw-a"] == {
        "country": "TW",
        "capacity": 5,
        "remoteness": Remoteness.EXTREMELY_REMOTE,
        "active": True,
        "region": "TW-TTT",
    }
    assert G.nodes["th-z"]["active"] is False
    assert G.edges["vn-x", "tw-a"] == {
        "partnership_id": "tw-a+vn-x",
        "start_date": START,
        "end_date": None,
        "modes": ("virtual", "visit"),
        "sdgs": (4, 13),
    }


def test_active_only_leaves_out_ended_partnerships_and_full_graph_dates_them() -> None:
    schools = [school("tw-a"), school("vn-x"), school("th-z")]
    ps = [partnership("tw-a", "vn-x"), partnership("tw-a", "th-z", end_date=date(2025, 1, 31))]

    active = build_partnership_graph(schools, ps)
    full = build_partnership_graph(schools, ps, active_only=False)

    assert list(active.edges) == [("tw-a", "vn-x")]
    assert full.number_of_edges() == 2
    assert full.edges["tw-a", "th-z"]["end_date"] == date(2025, 1, 31)
    assert active_partners(full, "tw-a") == ["vn-x"]
    assert load(full, "tw-a") == load(active, "tw-a") == pytest.approx(1 / 3)


def test_full_graph_shows_the_active_partnership_of_a_pair_that_partnered_twice() -> None:
    schools = [school("tw-a"), school("vn-x")]
    earlier = partnership("tw-a", "vn-x", "old", start_date=date(2019, 1, 1), end_date=date(2020, 1, 1))
    current = partnership("tw-a", "vn-x", "new", start_date=date(2023, 1, 1))

    for order in ([earlier, current], [current, earlier]):
        G = build_partnership_graph(schools, order, active_only=False)
        assert G.edges["tw-a", "vn-x"]["partnership_id"] == "new"


@pytest.mark.parametrize(
    ("schools", "partnerships", "error", "message"),
    [
        ([school("tw-a"), school("tw-a")], [], ValueError, "id: school 'tw-a' appears twice"),
        ([school("tw-a")], [partnership("tw-a", "vn-x")], ValueError, "school_b: unknown school 'vn-x'"),
        ([school("tw-a"), school("tw-b")], [partnership("tw-a", "tw-b")], ValueError, "partnerships must cross"),
        (
            [school("tw-a"), school("vn-x")],
            [partnership("tw-a", "vn-x", "p1"), partnership("vn-x", "tw-a", "p2")],
            Conflict,
            "already have active partnership 'p1'",
        ),
    ],
)
def test_build_rejects_bad_input_naming_the_field(
    schools: list[School], partnerships: list[Partnership], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        build_partnership_graph(schools, partnerships)


# --------------------------------------------------------------------------- live updates


def _snapshot(G: nx.Graph) -> tuple[dict, dict]:
    return dict(G.nodes(data=True)), {frozenset((u, v)): data for u, v, data in G.edges(data=True)}


@pytest.mark.parametrize("active_only", [True, False])
def test_live_updates_reach_the_same_graph_as_a_rebuild(active_only: bool) -> None:
    schools = [school("tw-a"), school("tw-b"), school("vn-x"), school("th-z")]
    first, second = partnership("tw-a", "vn-x"), partnership("tw-b", "vn-x")
    ended = first.model_copy(update={"end_date": date(2025, 6, 30)})
    later = partnership("tw-a", "th-z", start_date=date(2025, 7, 1))
    edited = school("tw-b", capacity=8, remoteness="remote")
    newcomer = school("my-n")

    G = build_partnership_graph(schools, [first], active_only=active_only)
    add_partnership(G, second)
    end_partnership(G, ended)
    add_partnership(G, later)
    update_school(G, edited)
    update_school(G, newcomer)

    final_schools = [schools[0], edited, schools[2], schools[3], newcomer]
    rebuilt = build_partnership_graph(final_schools, [ended, second, later], active_only=active_only)
    assert _snapshot(G) == _snapshot(rebuilt)
    assert active_partners(G, "tw-a") == ["th-z"]
    assert G.nodes["tw-b"]["capacity"] == 8


def test_live_updates_refuse_what_would_make_the_graph_inconsistent() -> None:
    p = partnership("tw-a", "vn-x", "p1")
    G = build_partnership_graph([school("tw-a"), school("vn-x"), school("th-z")], [p])

    with pytest.raises(NotFound, match="school 'my-q' not found"):
        add_partnership(G, partnership("tw-a", "my-q"))
    with pytest.raises(ValueError, match="end_date: partnership 'p9' has ended"):
        add_partnership(G, partnership("tw-a", "th-z", "p9", end_date=date(2025, 1, 1)))
    with pytest.raises(Conflict, match="already have active partnership 'p1'"):
        add_partnership(G, partnership("vn-x", "tw-a", "p2"))
    with pytest.raises(ValueError, match="end_date: partnership 'p1' has no end date"):
        end_partnership(G, p)
    with pytest.raises(NotFound, match="partnership 'p3' not found"):
        end_partnership(G, partnership("tw-a", "th-z", "p3", end_date=date(2025, 1, 1)))
    with pytest.raises(Conflict, match="is 'p1', not 'p4'"):
        end_partnership(G, partnership("tw-a", "vn-x", "p4", end_date=date(2025, 1, 1)))
    with pytest.raises(Conflict, match="country: vn-x cannot move to TW"):
        update_school(G, school("vn-x", "TW", region="TW-TPE"))
    assert G.has_edge("tw-a", "vn-x")
    assert G.nodes["vn-x"]["country"] == "VN"


def test_ending_twice_in_a_full_graph_is_a_conflict() -> None:
    p = partnership("tw-a", "vn-x", "p1")
    G = build_partnership_graph([school("tw-a"), school("vn-x")], [p], active_only=False)
    ended = p.model_copy(update={"end_date": date(2025, 1, 1)})
    end_partnership(G, ended)
    with pytest.raises(Conflict, match="has already ended"):
        end_partnership(G, ended)


# --------------------------------------------------------------------------- saturation


def _hub(capacity: int, partners: int) -> nx.Graph:
    abroad = [school(f"vn-{i}") for i in range(partners)]
    return graph_of([school("tw-hub", capacity=capacity), *abroad], [("tw-hub", s.id) for s in abroad])


def test_saturation_pushes_down_near_capacity_and_is_zero_at_capacity() -> None:
    factors = [saturation_factor(_hub(capacity=5, partners=n), "tw-hub", threshold=0.5) for n in range(7)]

    assert factors[:3] == [1.0, 1.0, 1.0]  # load 0, 0.2, 0.4: below the 0.5 threshold
    assert factors[3] == pytest.approx(0.8)  # load 0.6 -> (1 - 0.6) / 0.5
    assert factors[4] == pytest.approx(0.4)
    assert factors[5] == factors[6] == 0.0  # at and beyond capacity


def test_pending_invitations_count_toward_load() -> None:
    G = _hub(capacity=4, partners=2)
    assert load(G, "tw-hub", pending=1) == 0.75
    assert saturation_factor(G, "tw-hub", pending=2, threshold=0.5) == 0.0
    assert saturation_factor(G, "tw-hub", pending=1, threshold=0.8) == 1.0


def test_capacity_zero_is_always_saturated() -> None:
    G = _hub(capacity=0, partners=0)
    assert load(G, "tw-hub") == math.inf
    assert saturation_factor(G, "tw-hub", threshold=0.5) == 0.0


@given(capacity=st.integers(0, 12), partners=st.integers(0, 12), threshold=st.floats(0, 1))
def test_saturation_is_a_share_that_never_rises_with_load(capacity: int, partners: int, threshold: float) -> None:
    G = _hub(capacity, partners)
    factors = [saturation_factor(G, "tw-hub", pending=p, threshold=threshold) for p in range(4)]
    assert all(0.0 <= f <= 1.0 for f in factors)
    assert factors == sorted(factors, reverse=True)


def test_bad_arguments_are_named() -> None:
    G = _hub(capacity=3, partners=1)
    with pytest.raises(ValueError, match=r"threshold: must be in \[0, 1\], got 1.5"):
        saturation_factor(G, "tw-hub", threshold=1.5)
    with pytest.raises(ValueError, match="pending: must be >= 0"):
        load(G, "tw-hub", pending=-1)
    with pytest.raises(ValueError, match=r"decay: must be in \(0, 1\]"):
        country_diversity_factor(G, "tw-hub", "VN", decay=0)
    with pytest.raises(NotFound, match="school 'tw-nobody' not found"):
        equity_boost(G, "tw-nobody", no_partner_boost=0.15, remote_boost=0.1)


# --------------------------------------------------------------------------- equity


def test_equity_lifts_lonely_and_remote_schools_above_popular_ones() -> None:
    abroad = [school(f"vn-{i}") for i in range(4)]
    schools = [
        school("tw-popular"),
        school("tw-lonely"),
        school("tw-remote", remoteness="remote"),
        school("tw-very", remoteness="very_remote"),
        school("tw-extreme", remoteness="extremely_remote"),
        school("tw-extreme-partnered", remoteness="extremely_remote"),
        *abroad,
    ]
    partnered = ["tw-remote", "tw-very", "tw-extreme-partnered"]
    G = graph_of(schools, [("tw-popular", s.id) for s in abroad] + [(node, "vn-0") for node in partnered])
    boost = {s.id: equity_boost(G, s.id, no_partner_boost=0.15, remote_boost=0.1) for s in schools[:6]}

    assert boost == pytest.approx(
        {
            "tw-popular": 1.0,
            "tw-lonely": 1.15,
            "tw-remote": 1.10,
            "tw-very": 1.15,
            "tw-extreme": 1.35,
            "tw-extreme-partnered": 1.20,
        }
    )
    assert min(boost.values()) == boost["tw-popular"]
    assert equity_boost(G, "tw-lonely", no_partner_boost=0.3, remote_boost=0.1) == pytest.approx(1.3)


# --------------------------------------------------------------------------- diversity


def test_country_diversity_decays_with_partners_already_there() -> None:
    abroad = [school(f"vn-{i}") for i in range(3)] + [school("th-0")]
    G = graph_of([school("tw-a"), *abroad], [("tw-a", s.id) for s in abroad])
    factors = []
    for n in range(3):
        H = G.copy()
        H.remove_edges_from([("tw-a", f"vn-{i}") for i in range(n, 3)])
        factors.append(country_diversity_factor(H, "tw-a", "VN", decay=0.7))

    assert factors == pytest.approx([1.0, 0.7, 0.49])
    assert country_diversity_factor(G, "tw-a", "TH", decay=0.5) == 0.5
    assert country_diversity_factor(G, "tw-a", "MY", decay=0.5) == 1.0
    assert partner_countries(G, "tw-a") == {"VN": 3, "TH": 1}


# --------------------------------------------------------------------------- responsiveness


def test_responsiveness_pushes_down_schools_that_let_invitations_expire() -> None:
    history = {
        "tw-reliable": InvitationCounts(received=6, answered=6, expired=0),
        "tw-once": InvitationCounts(received=3, answered=2, expired=1),
        "tw-silent": InvitationCounts(received=6, answered=0, expired=6),
        "tw-new": InvitationCounts(received=2),
    }
    factor = {node: responsiveness_factor(history, node) for node in [*history, "tw-unknown"]}

    assert factor["tw-reliable"] == factor["tw-new"] == factor["tw-unknown"] == 1.0
    assert factor["tw-once"] == pytest.approx(0.3 + 0.7 * 4 / 5)
    assert factor["tw-silent"] == pytest.approx(0.3 + 0.7 * 2 / 8)
    assert factor["tw-silent"] < factor["tw-once"] < factor["tw-reliable"]
    never = {"tw-silent": InvitationCounts(received=1000, expired=1000)}
    assert 0.3 < responsiveness_factor(never, "tw-silent") < 0.302
    assert responsiveness_factor(never, "tw-silent", prior_answered=0) == 0.3


def test_invitation_counts_must_add_up() -> None:
    with pytest.raises(ValueError, match="received: 2 is fewer than answered 2 \\+ expired 1"):
        InvitationCounts(received=2, answered=2, expired=1)
    with pytest.raises(ValueError, match="expired: must be >= 0"):
        InvitationCounts(received=2, expired=-1)


# --------------------------------------------------------------------------- cluster bridges


def _bridge_world(extra_schools: Sequence[School] = (), extra_pairs: Sequence[tuple[str, str]] = ()) -> nx.Graph:
    """tw-me works with vn-x; tw-y shares vn-x and also works with th-z and my-w."""
    schools = [school(i) for i in ("tw-me", "vn-x", "tw-y", "th-z", "my-w", "tw-far", "id-far")]
    pairs = [("tw-me", "vn-x"), ("tw-y", "vn-x"), ("tw-y", "th-z"), ("tw-y", "my-w"), ("tw-far", "id-far")]
    return graph_of([*schools, *extra_schools], [*pairs, *extra_pairs])


def test_cluster_bridge_found_exactly_in_the_constructed_case() -> None:
    bridges = cluster_bridges(_bridge_world(), "tw-me")

    assert bridges == {
        "th-z": BridgePath("th-z", "TH", "tw-y", "TW", "vn-x", "VN"),
        "my-w": BridgePath("my-w", "MY", "tw-y", "TW", "vn-x", "VN"),
    }
    assert cluster_boost(bridges["th-z"]) == pytest.approx(1.1)
    assert cluster_boost(bridges.get("id-far"), weight=0.3) == 1.0


def test_no_bridge_into_a_country_where_i_already_have_a_partner() -> None:
    G = _bridge_world([school("th-mine")], [("tw-me", "th-mine")])
    assert set(cluster_bridges(G, "tw-me")) == {"my-w"}


def test_no_bridge_through_a_peer_on_the_other_side_or_to_an_inactive_school() -> None:
    # vn-x also works with sg-q (a foreign-foreign partnership, scope "any"): sg-q is not on
    # tw-me's side, so its partner au-r is not reached through it. th-z has left the alliance.
    G = _bridge_world([school("sg-q"), school("au-r")], [("vn-x", "sg-q"), ("sg-q", "au-r")])
    G.nodes["th-z"]["active"] = False
    assert set(cluster_bridges(G, "tw-me")) == {"my-w"}


def test_foreign_source_takes_the_symmetric_path() -> None:
    # vn-x works with tw-y; tw-y also works with th-z; th-z works with tw-new: vn-x reaches tw-new.
    G = _bridge_world([school("tw-new"), school("vn-x2")], [("th-z", "tw-new"), ("vn-x2", "tw-y")])
    bridges = cluster_bridges(G, "vn-x")

    assert bridges == {"tw-new": BridgePath("tw-new", "TW", "th-z", "TH", "tw-y", "TW")}
    # Any foreign peer is on a foreign source's side, one in its own country (vn-x) included.
    assert cluster_bridges(G, "vn-x2") == {
        "tw-new": BridgePath("tw-new", "TW", "th-z", "TH", "tw-y", "TW"),
        "tw-me": BridgePath("tw-me", "TW", "vn-x", "VN", "tw-y", "TW"),
    }


def test_max_partners_caps_the_fan_out_of_each_intermediate_school() -> None:
    peers = [school(f"tw-p{i}") for i in range(5)]
    candidates = [school(f"th-c{i}") for i in range(5)]
    schools = [school("tw-me"), school("vn-hub"), *peers, *candidates]
    partnerships = [partnership("tw-me", "vn-hub", start_date=date(2020, 1, 1))]
    partnerships += [partnership(p.id, "vn-hub", start_date=date(2021, 1, i + 1)) for i, p in enumerate(peers)]
    partnerships += [partnership(p.id, c.id) for p, c in zip(peers, candidates, strict=True)]
    G = build_partnership_graph(schools, partnerships)

    assert len(cluster_bridges(G, "tw-me")) == 5
    # vn-hub's three longest-standing partnerships: tw-me, tw-p0, tw-p1.
    assert set(cluster_bridges(G, "tw-me", max_partners=3)) == {"th-c0", "th-c1"}
    with pytest.raises(ValueError, match="max_partners: must be >= 1"):
        cluster_bridges(G, "tw-me", max_partners=0)


# --------------------------------------------------------------------------- communities


def _two_planted_clusters() -> nx.Graph:
    """Two dense Taiwan-abroad groups (VN and TH) joined by one partnership, plus a loose pair."""
    vn_group = [f"tw-v{i}" for i in range(4)] + [f"vn-{i}" for i in range(4)]
    th_group = [f"tw-t{i}" for i in range(4)] + [f"th-{i}" for i in range(4)]
    pairs = [(a, b) for group in (vn_group, th_group) for a in group[:4] for b in group[4:] if a[-1] != b[-1]]
    pairs += [("tw-v0", "th-0"), ("tw-solo", "my-solo")]
    schools = [school(i) for i in (*vn_group, *th_group, "tw-solo", "my-solo")]
    return graph_of(schools, pairs)


def test_community_detection_finds_the_two_planted_clusters() -> None:
    G = _two_planted_clusters()
    clusters = cross_border_clusters(G)

    assert [set(c.members) for c in clusters] == [
        {"th-0", "th-1", "th-2", "th-3", "tw-t0", "tw-t1", "tw-t2", "tw-t3"},
        {"tw-v0", "tw-v1", "tw-v2", "tw-v3", "vn-0", "vn-1", "vn-2", "vn-3"},
    ]
    assert [c.countries for c in clusters] == [{"TH": 4, "TW": 4}, {"TW": 4, "VN": 4}]
    assert [c.size for c in clusters] == [8, 8]
    assert cross_border_clusters(G) == clusters  # seeded: same graph, same clusters
    assert len(cross_border_clusters(G, min_size=2)) == 3  # the loose pair counts at size 2


def test_ended_partnerships_do_not_hold_a_cluster_together() -> None:
    schools = [school(i) for i in ("tw-a", "tw-b", "vn-x", "vn-y")]
    ps = [partnership(a, b) for a in ("tw-a", "tw-b") for b in ("vn-x", "vn-y")]
    G = build_partnership_graph(schools, ps, active_only=False)
    assert cross_border_clusters(G, min_size=2) != []
    for p in ps:
        end_partnership(G, p.model_copy(update={"end_date": date(2025, 1, 1)}))
    assert G.number_of_edges() == 4
    assert cross_border_clusters(G, min_size=2) == []


# --------------------------------------------------------------------------- summary


def test_graph_summary_of_a_known_graph() -> None:
    G = _two_planted_clusters()
    update_school(G, school("tw-left", active=False))
    update_school(G, school("nz-new"))
    summary = graph_summary(G)

    degrees = [d for node, d in G.degree if G.nodes[node]["active"]]
    assert summary == {
        "schools": 20,
        "active_schools": 19,
        "partnerships": 2 * 12 + 2,
        "components": 2,
        "largest_component": 16,
        "share_with_partner": 18 / 19,
        "degree_gini": pytest.approx(gini(degrees)),
        "countries": {"TW": 9, "TH": 4, "VN": 4, "MY": 1, "NZ": 1},
        "cross_border_clusters": 2,
    }
    assert 0 < summary["degree_gini"] < 0.3


def test_gini_of_even_and_concentrated_degrees() -> None:
    assert gini([]) == gini([0, 0]) == gini([2, 2, 2]) == 0.0
    assert gini([0, 0, 0, 0, 10]) == pytest.approx(0.8)


# --------------------------------------------------------------------------- exposure


def test_exposure_counts_decay_by_half_life_and_survive_a_save() -> None:
    now = [0.0]
    ledger = ExposureLedger(half_life_hours=2.0, clock=lambda: now[0])
    ledger.record(["tw-a", "tw-b"], side="home")
    now[0] = 2 * 3600.0
    ledger.record(["tw-a"], side="home")
    assert ledger.count("tw-a") == pytest.approx(1.5)
    assert ledger.count("tw-b") == pytest.approx(0.5)
    assert ledger.total("home") == pytest.approx(2.0)
    assert ledger.total("foreign") == 0.0
    saved = ledger.state()
    now[0] += 2 * 3600.0
    restored = ExposureLedger.from_state(saved, clock=lambda: now[0])
    assert restored.count("tw-a") == pytest.approx(0.75)
    assert restored.total("home") == pytest.approx(1.0)


def test_exposure_ledger_stays_finite_over_many_half_lives() -> None:
    now = [0.0]
    ledger = ExposureLedger(half_life_hours=1.0, clock=lambda: now[0])
    for hour in range(0, 2000, 10):
        now[0] = hour * 3600.0
        ledger.record(["tw-a"], side="home")
    assert math.isfinite(ledger.count("tw-a"))
    assert ledger.count("tw-a") == pytest.approx(1 / (1 - 2**-10))


def test_exposure_factor_damps_only_above_the_average() -> None:
    assert exposure_factor(0.0, 5.0, strength=1.0) == 1.0
    assert exposure_factor(5.0, 5.0, strength=1.0) == 1.0
    assert exposure_factor(15.0, 5.0, strength=1.0) == pytest.approx(1 / 3)
    assert exposure_factor(1.0, 0.01, strength=1.0) == 1.0  # the mean is floored at one appearance
    assert exposure_factor(15.0, 5.0, strength=0.0) == 1.0
    with pytest.raises(ValueError, match="strength"):
        exposure_factor(1.0, 1.0, strength=-1.0)
