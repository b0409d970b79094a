"""TournamentPlugin: schedules of every format are valid (hypothesis), standings follow the
results, the state survives a reconnect, bad input fails clearly, and the dashboard draws.

Pure algorithms run in memory; the main path runs on memory, file and the moto server
(``plugin_reconnect``); the rest uses ``memory://``.
"""

from __future__ import annotations

import itertools
import random
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import s3db_nb
from s3db_nb.plugin_api import ConflictError, InvalidArgumentError, NotFoundError, PluginError
from s3db_nb.plugins.tournament import TournamentPlugin
from s3db_nb.plugins.tournament_formats import (
    BYE,
    REGISTRY,
    bracket_order,
    double_elimination_specs,
    elo,
    next_power_of_two,
    resolve,
    round_robin_pairs,
    seed_snake,
    single_elimination_specs,
    swiss_pairing,
)
from s3db_nb.widgets.tournament import TournamentDashboard

FAST = settings(max_examples=25, deadline=None)


def players(n: int) -> list[str]:
    return [f"p{i}" for i in range(n)]


def play_out(specs: dict, rng: random.Random) -> tuple[dict, dict]:
    """Report random winners for every ready match until none is left; returns (results, resolved)."""
    results: dict = {}
    while True:
        resolved = resolve(specs, results)
        ready = [ref for ref, row in resolved.items() if row["state"] == "ready"]
        if not ready:
            return results, resolved
        row = resolved[ready[0]]
        winner, loser = (row["p1"], row["p2"]) if rng.random() < 0.5 else (row["p2"], row["p1"])
        results[ready[0]] = {"winner": winner, "loser": loser}


def no_one_twice_per_round(specs: dict, resolved: dict) -> None:
    seen: dict = {}
    for ref, spec in specs.items():
        key = (spec["phase"], spec.get("group"), spec["round"])
        for side in ("p1", "p2"):
            who = resolved[ref][side]
            if who is None or who is BYE:
                continue
            assert who not in seen.setdefault(key, set()), f"{who} plays twice in {key}"
            seen[key].add(who)


# -- pure algorithms -----------------------------------------------------------------------------


def test_bracket_order_keeps_top_seeds_apart():
    assert bracket_order(8) == [1, 8, 4, 5, 2, 7, 3, 6]
    for size in (2, 4, 16, 64):
        order = bracket_order(size)
        assert sorted(order) == list(range(1, size + 1))
        pairs = {frozenset(order[i : i + 2]) for i in range(0, size, 2)}
        assert all(sum(p) == size + 1 for p in pairs)  # 1 v n, 2 v n-1, ...
        half = size // 2
        assert (1 in order[:half]) != (2 in order[:half])  # 1 and 2 in different halves


def test_snake_seeding_balances_groups():
    assert seed_snake(list(range(1, 9)), 2) == [[1, 4, 5, 8], [2, 3, 6, 7]]
    assert seed_snake(list(range(1, 7)), 3) == [[1, 6], [2, 5], [3, 4]]


@FAST
@given(st.integers(2, 14), st.integers(1, 2))
def test_round_robin_everyone_meets_everyone_once_per_leg(n, legs):
    rounds = round_robin_pairs(players(n), legs)
    met: dict[frozenset, int] = {}
    for pairs in rounds:
        in_round = [p for pair in pairs for p in pair if p is not None]
        assert len(in_round) == len(set(in_round))  # nobody twice in a round
        for a, b in pairs:
            if a is not None and b is not None:
                met[frozenset((a, b))] = met.get(frozenset((a, b)), 0) + 1
    assert met == {frozenset(p): legs for p in itertools.combinations(players(n), 2)}
    assert len(rounds) == legs * (n - 1 if n % 2 == 0 else n)


@FAST
@given(st.integers(2, 24), st.booleans(), st.randoms(use_true_random=False))
def test_single_elimination_is_valid(n, third_place, rng):
    specs = single_elimination_specs(players(n), third_place=third_place)
    size = next_power_of_two(n)
    first = [s for s in specs.values() if s["round"] == 1]
    byes = [s for s in first if ["seed", None] in s["slots"]]
    assert len(byes) == size - n  # byes only where the field is not a power of two
    assert all(s["slots"][0][1] is not None for s in first)  # never bye against bye
    if byes:  # the byes go to the top seeds
        favoured = {s["slots"][0][1] for s in byes}
        assert favoured == set(players(n)[: size - n])
    results, resolved = play_out(specs, rng)
    assert all(row["state"] in ("done", "bye", "skipped") for row in resolved.values())
    no_one_twice_per_round(specs, resolved)
    played = sum(1 for row in resolved.values() if row["state"] == "done")
    assert played == n - 1 + (1 if third_place and n >= 4 else 0)  # with 3 players the third-place match is a bye
    fmt = REGISTRY["single-elimination"]
    bracket = {"matches": specs, "seeds": players(n)}
    winner = fmt.winner(bracket, resolved, {}, {})
    losers = {row["loser"] for ref, row in resolved.items() if row["state"] == "done" and ref != "3P"}
    assert winner in players(n) and winner not in losers and len(losers) == n - 1
    standings = fmt.standings(bracket, resolved, {}, {})
    assert [r["participantId"] for r in standings if r["placement"] == 1] == [winner]


@FAST
@given(st.integers(2, 17), st.booleans(), st.randoms(use_true_random=False))
def test_double_elimination_ends_with_one_winner(n, reset, rng):
    specs = double_elimination_specs(players(n), reset=reset)
    results, resolved = play_out(specs, rng)
    assert all(row["state"] in ("done", "bye", "skipped") for row in resolved.values())
    no_one_twice_per_round(specs, resolved)
    losses = {p: 0 for p in players(n)}
    for row in resolved.values():
        if row["state"] == "done":
            losses[row["loser"]] += 1
    fmt = REGISTRY["double-elimination"]
    bracket = {"matches": specs, "seeds": players(n)}
    winner = fmt.winner(bracket, resolved, {}, {})
    assert winner in players(n)
    # everyone but the champion is out after exactly two losses; the champion lost at most once
    assert losses[winner] <= 1
    others = [count for p, count in losses.items() if p != winner]
    if reset:
        assert all(count == 2 for count in others)
    else:  # without the reset the grand final's loser may be out after one loss
        assert all(1 <= count <= 2 for count in others) and sum(1 for c in others if c == 1) <= 1
    places = {r["participantId"]: r["placement"] for r in fmt.standings(bracket, resolved, {}, {})}
    assert places[winner] == 1 and sorted(places.values())[1] == 2 and None not in places.values()


def _repeat_free_matching_exists(players_: list[str], met: set, byes: list[str] | None = None) -> bool:
    """Could this round be paired without a rematch (with one of ``byes`` resting when odd)?"""

    def perfect(pool: list[str]) -> bool:
        if not pool:
            return True
        first = pool[0]
        return any(frozenset((first, o)) not in met and perfect([p for p in pool[1:] if p != o]) for o in pool[1:])

    if len(players_) % 2 == 0:
        return perfect(players_)
    return any(perfect([p for p in players_ if p != bye]) for bye in (players_ if byes is None else byes))


@settings(max_examples=20, deadline=None)
@given(st.integers(3, 9), st.integers(1, 8), st.randoms(use_true_random=False))
def test_swiss_never_repeats_a_pairing_while_avoidable(n, rounds, rng):
    rounds = min(rounds, n - 1 + n % 2)
    fmt, config = REGISTRY["swiss"], {**REGISTRY["swiss"].defaults(), "rounds": rounds}
    ps = players(n)
    bracket = {**fmt.generate(ps, config), "seeds": ps}
    results: dict = {}
    while True:
        resolved = resolve(bracket["matches"], results)
        for ref, row in resolved.items():
            if row["state"] == "ready":
                pick = rng.random()
                winner = None if pick < 0.15 else row["p1"] if pick < 0.6 else row["p2"]
                results[ref] = {"winner": winner, "loser": None if winner is None else (row["p2"] if winner == row["p1"] else row["p1"])}
        resolved = resolve(bracket["matches"], results)
        games = {
            ref: {"p1": row["p1"], "p2": row["p2"], "score1": 0, "score2": 0, "winner": row["winner"], "status": "completed"}
            for ref, row in resolved.items()
            if row["state"] == "done"
        }
        games.update({ref: {"p1": row["winner"], "p2": None, "status": "bye"} for ref, row in resolved.items() if row["state"] == "bye"})
        met = {frozenset((row["p1"], row["p2"])) for row in resolved.values() if row["state"] == "done"}
        had_bye = {row["winner"] for row in resolved.values() if row["state"] == "bye"}
        before = set(bracket["matches"])
        new = fmt.advance(bracket, resolved, games, config)
        if not new:
            break
        for spec in new:
            pair = frozenset(s[1] for s in spec["slots"])
            if None not in pair and pair in met:
                assert not _repeat_free_matching_exists(ps, met), f"avoidable rematch {set(pair)}"
            elif None in pair and set(pair) & had_bye:  # a second bye only when a fresh one forces a rematch
                fresh = [p for p in ps if p not in had_bye]
                assert not fresh or not _repeat_free_matching_exists(ps, met, fresh)
        assert not (set(bracket["matches"]) - before) - {s["ref"] for s in new}
    resolved = resolve(bracket["matches"], results)
    assert fmt.is_complete(bracket, resolved)
    assert max(s["round"] for s in bracket["matches"].values()) == rounds
    no_one_twice_per_round(bracket["matches"], resolved)
    for r in range(1, rounds + 1):  # everyone plays every round (or has the bye)
        seated = [x for s in bracket["matches"].values() if s["round"] == r for x in (s["slots"][0][1], s["slots"][1][1]) if x is not None]
        assert sorted(seated) == sorted(ps)


def test_swiss_pairing_prefers_unplayed_opponents():
    pairs, bye, repeats = swiss_pairing(["a", "b", "c", "d"], {frozenset("ab"), frozenset("cd")})
    assert repeats == 0 and bye is None and {frozenset(p) for p in pairs} == {frozenset("ac"), frozenset("bd")}


def test_elo_moves_ratings_by_k_over_two_between_equals():
    assert elo(1000, 1000, 1.0) == (1016.0, 984.0)
    a, b = elo(1200, 1000, 0.0)
    assert round(a, 2) == 1175.69 and round(a + b, 6) == 2200


# -- the plugin --------------------------------------------------------------------------------------


@pytest.fixture
def db():
    database = s3db_nb.connect(f"memory://t-{uuid.uuid4().hex[:8]}")
    yield database
    database.disconnect()


@pytest.fixture
def tp(db) -> TournamentPlugin:
    return db.use_plugin(TournamentPlugin())


def started(tp: TournamentPlugin, fmt: str, n: int, config: dict | None = None) -> str:
    tid = tp.create(f"{fmt} cup", organizer_id="club", format=fmt, config=config)["id"]
    tp.open_registration(tid)
    for i in range(n):
        tp.register(tid, f"p{i}")
    tp.start_tournament(tid)
    return tid


def play_all(tp: TournamentPlugin, tid: str, rng: random.Random, draws: bool = False) -> list[tuple]:
    reported = []
    for _ in range(500):
        pending = tp.get_matches(tid, status="pending")
        if not pending:
            break
        match = pending[0]
        a, b = rng.randint(0, 4), rng.randint(0, 4)
        if a == b and not draws:
            a += 1
        tp.report_result(match["id"], score1=a, score2=b)
        reported.append((match["participant1Id"], match["participant2Id"], a, b))
    return reported


def test_resources_have_the_s3db_js_names(db, tp):
    assert {"plg_tournaments", "plg_tournament_matches", "plg_tournament_registrations"} <= set(db.resources)
    assert tp.get_available_formats() == list(REGISTRY)


def test_main_path_survives_a_reconnect(plugin_reconnect):
    first = plugin_reconnect()
    tp = first.use_plugin(TournamentPlugin())
    tid = tp.create("Spring cup", organizer_id="club", format="single-elimination", config={"third_place": True})["id"]
    tp.open_registration(tid)
    for i, team in enumerate(["ants", "bees", "cats", "dogs", "eels"]):
        tp.register(tid, team, seed=i + 1)
    tp.start_tournament(tid)
    ready = tp.get_matches(tid, status="pending")
    # 3 byes to the top seeds: ants waits for dogs/eels, bees and cats meet in round 2
    assert {(m["participant1Id"], m["participant2Id"]) for m in ready} == {("dogs", "eels"), ("bees", "cats")}
    assert sorted(m["status"] for m in tp.get_matches(tid, round=1)) == ["bye", "bye", "bye", "pending"]
    tp.report_result(next(m["id"] for m in ready if m["participant1Id"] == "dogs"), score1=1, score2=3)

    second = plugin_reconnect()
    again = second.use_plugin(TournamentPlugin())
    assert again.get(tid)["status"] == "in-progress"
    semis = again.get_matches(tid, round=2)
    assert {(m["participant1Id"], m["participant2Id"]) for m in semis} == {("ants", "eels"), ("bees", "cats")}
    for m in semis:
        again.report_result(m["id"], {"score1": 2, "score2": 0})
    for m in again.get_matches(tid, status="pending"):
        again.report_result(m["id"], score1=0, score2=1)
    done = again.get(tid)
    assert done["status"] == "completed" and done["metadata"]["winner"] == "bees"
    places = {r["participantId"]: r["placement"] for r in again.get_standings(tid)}
    assert places == {"bees": 1, "ants": 2, "cats": 3, "eels": 4, "dogs": 5}
    assert first.tournament.get(tid)["status"] == "completed"  # the first connection reads the same state


@pytest.mark.parametrize("fmt,n,config", [
    ("single-elimination", 7, None), ("double-elimination", 6, {"grand_final_reset": False}), ("double-elimination", 5, None),
    ("round-robin", 5, {"legs": 2}), ("swiss", 8, {"rounds": 3}), ("groups", 8, {"group_count": 2, "advance_per_group": 2}),
    ("league-playoffs", 6, {"playoff_size": 4, "third_place": True}), ("groups", 6, {"group_count": 3, "playoffs": False}),
])  # fmt: skip
def test_every_format_runs_to_a_single_winner(tp, fmt, n, config):
    tid = started(tp, fmt, n, config)
    play_all(tp, tid, random.Random(n))
    done = tp.get(tid)
    assert done["status"] == "completed", tp.get_matches(tid)
    winner = done["metadata"]["winner"]
    standings = tp.get_standings(tid)
    assert standings[0]["participantId"] == winner and winner in players(n)
    matches = tp.get_matches(tid)
    assert all(m["status"] in ("completed", "walkover", "bye", "skipped") for m in matches)
    for m in matches:  # a winner's next match names a real record holding that winner
        if m["nextMatchId"] and m["status"] == "completed":
            nxt = tp.get_match(m["nextMatchId"])
            assert m["winnerId"] in (nxt["participant1Id"], nxt["participant2Id"])


@FAST
@given(st.integers(3, 6), st.randoms(use_true_random=False))
def test_round_robin_standings_match_the_results(n, rng):
    with s3db_nb.connect(f"memory://rr-{uuid.uuid4().hex[:8]}") as database:
        tp = database.use_plugin(TournamentPlugin())
        tid = started(tp, "round-robin", n, {"points_win": 3, "points_draw": 1})
        reported = play_all(tp, tid, random.Random(rng.random()), draws=True)
        assert len(reported) == n * (n - 1) // 2
        expected = {p: {"points": 0, "wins": 0, "draws": 0, "losses": 0, "scoreFor": 0} for p in players(n)}
        for p1, p2, a, b in reported:
            expected[p1]["scoreFor"] += a
            expected[p2]["scoreFor"] += b
            if a == b:
                for p in (p1, p2):
                    expected[p]["points"] += 1
                    expected[p]["draws"] += 1
            else:
                win, lose = (p1, p2) if a > b else (p2, p1)
                expected[win]["points"] += 3
                expected[win]["wins"] += 1
                expected[lose]["losses"] += 1
        rows = tp.get_standings(tid)
        assert {r["participantId"]: {k: r[k] for k in expected["p0"]} for r in rows} == expected
        assert [r["points"] for r in rows] == sorted((r["points"] for r in rows), reverse=True)


def test_best_of_series_games_walkovers_and_schedule(tp):
    tid = started(tp, "single-elimination", 4, {"best_of": 3})
    first, second = tp.get_matches(tid, round=1)
    tp.schedule_match(first["id"], 4_102_444_800_000)
    assert [m["id"] for m in tp.get_upcoming_matches(tid)] == [first["id"]]
    tp.start_match(first["id"])
    assert [m["id"] for m in tp.get_live_matches(tid)] == [first["id"]]
    tp.report_game(first["id"], {"score1": 16, "score2": 10})
    assert tp.get_match(first["id"])["status"] == "in-progress"
    tp.report_game(first["id"], score1=5, score2=16)
    done = tp.report_game(first["id"], score1=16, score2=3)
    assert (done["status"], done["score1"], done["score2"], len(done["games"])) == ("completed", 2, 1, 3)
    walk = tp.report_walkover(second["id"], second["participant2Id"], reason="no show")
    final = tp.get_match(first["nextMatchId"])
    assert final["participant1Id"] == done["winnerId"] and final["participant2Id"] == walk["winnerId"] and final["status"] == "pending"


def test_ladder_challenges_swap_rungs_and_move_elo(tp):
    tid = started(tp, "ladder", 5, {"challenge_range": 2})
    assert [r["participantId"] for r in tp.get_ladder_ranking(tid)] == players(5)
    match = tp.challenge(tid, "p3", "p1")
    with pytest.raises(InvalidArgumentError, match="open challenge"):
        tp.challenge(tid, "p2", "p1")
    tp.report_result(match["id"], score1=3, score2=1)
    ranking = tp.get_ladder_ranking(tid)
    assert [r["participantId"] for r in ranking] == ["p0", "p3", "p1", "p2", "p4"]
    rating = {r["participantId"]: r["rating"] for r in ranking}
    assert rating["p3"] == 1016 and rating["p1"] == 984 and rating["p0"] == 1000
    with pytest.raises(InvalidArgumentError, match="challenge_range"):
        tp.challenge(tid, "p4", "p0")
    assert tp.get(tid)["status"] == "in-progress"
    assert tp.complete(tid)["metadata"]["winner"] == "p0"


def test_circuit_accumulates_points_over_events(tp):
    cid = tp.create("Tour", organizer_id="league", format="circuit", config={"points_table": {1: 10, 2: 6, 3: 4}, "count_best": 2})["id"]
    tp.add_circuit_event(cid, {"id": "e1", "name": "Open", "results": {"ann": 1, "bob": 2, "cid": 3}})
    tp.add_circuit_event(cid, {"id": "e2", "name": "Major", "multiplier": 2, "results": [{"participantId": "bob", "placement": 1}]})
    tp.add_circuit_event(cid, {"id": "e3", "results": {"ann": 3, "bob": 9}})
    rows = tp.get_circuit_standings(cid)
    assert [(r["participantId"], r["points"]) for r in rows] == [("bob", 26), ("ann", 14), ("cid", 4)]
    with pytest.raises(ConflictError, match="e1"):
        tp.add_circuit_event(cid, {"id": "e1", "results": {"ann": 1}})


def test_registration_lifecycle(tp):
    tid = tp.create("Cup", organizer_id="club", format="round-robin", config={"require_confirmation": True, "check_in_required": True})[
        "id"
    ]
    with pytest.raises(InvalidArgumentError, match="open_registration"):
        tp.register(tid, "a")
    tp.open_registration(tid)
    for p in "abcd":
        assert tp.register(tid, p)["status"] == "pending"
    with pytest.raises(ConflictError, match="already registered"):
        tp.register(tid, "a")
    for p in "abc":
        tp.confirm_registration(tid, p)
        tp.check_in(tid, p)
    tp.withdraw(tid, "d", reason="ill")
    tp.shuffle_seeds(tid, random_seed=7)
    assert [(r["participantId"], r["seed"]) for r in tp.get_participants(tid)][-1] == ("d", None)
    assert sorted(r["seed"] for r in tp.get_participants(tid)[:3]) == [1, 2, 3]
    tp.set_seed(tid, "c", 1)
    tp.close_registration(tid)
    started_ = tp.start_tournament(tid)
    assert sorted(started_["participants"]) == ["a", "b", "c"] and started_["participants"][0] == "c"
    with pytest.raises(InvalidArgumentError, match="walkover"):
        tp.withdraw(tid, "a")
    assert tp.list(status="in-progress")[0]["id"] == tid and tp.list(organizer_id="nobody") == []
    tp.cancel(tid, "rain")
    tp.delete(tid)
    with pytest.raises(NotFoundError, match=tid):
        tp.get(tid)


def test_bad_input_fails_clearly(tp):
    with pytest.raises(InvalidArgumentError, match="did you mean 'swiss'"):
        tp.create("x", organizer_id="o", format="swis")
    with pytest.raises(InvalidArgumentError, match="organizer_id is required"):
        tp.create("x", format="swiss")
    with pytest.raises(InvalidArgumentError, match="did you mean 'best_of'"):
        tp.create("x", organizer_id="o", format="swiss", config={"bestof": 3})
    with pytest.raises(InvalidArgumentError, match="best_of must be an odd integer"):
        tp.create("x", organizer_id="o", format="single-elimination", config={"best_of": 2})
    with pytest.raises(InvalidArgumentError, match="points_table"):
        tp.create("x", organizer_id="o", format="circuit", config={"points_table": {}})
    with pytest.raises(PluginError, match="resource_names"):
        TournamentPlugin(resource_names={"games": "x"})
    tid = tp.create("x", organizer_id="o", format="single-elimination")["id"]
    tp.open_registration(tid)
    with pytest.raises(InvalidArgumentError, match="participant_id"):
        tp.register(tid, "a/b")
    tp.register(tid, "a")
    with pytest.raises(InvalidArgumentError, match="at least 2"):
        tp.start_tournament(tid)
    tp.register(tid, "b")
    tp.register(tid, "c")
    tp.start_tournament(tid)
    (final,) = tp.get_matches(tid, status="pending")
    with pytest.raises(InvalidArgumentError, match="has no opponents yet"):
        tp.report_result(final["nextMatchId"], score1=2, score2=1)
    with pytest.raises(InvalidArgumentError, match="draw"):
        tp.report_result(final["id"], score1=1, score2=1)
    with pytest.raises(InvalidArgumentError, match="score1 must be a number"):
        tp.report_result(final["id"], score1="2", score2=1)
    with pytest.raises(InvalidArgumentError, match="not in match"):
        tp.report_walkover(final["id"], "zed")
    tp.report_result(final["id"], score1=2, score2=1)
    with pytest.raises(InvalidArgumentError, match="already has a result"):
        tp.report_result(final["id"], score1=2, score2=1)
    with pytest.raises(InvalidArgumentError, match="only for ladder"):
        tp.challenge(tid, "a", "b")
    with pytest.raises(NotFoundError, match="no match"):
        tp.get_match("nope")
    groups = tp.create("g", organizer_id="o", format="groups", config={"group_count": 3})["id"]
    tp.open_registration(groups)
    for p in "abcd":
        tp.register(groups, p)
    with pytest.raises(InvalidArgumentError, match="group_count=3 needs at least 6"):
        tp.start_tournament(groups)


def test_namespaced_plugins_keep_their_own_resources(db):
    tp = db.use_plugin(TournamentPlugin(namespace="esports"))
    assert tp.tournaments_name == "plg_esports_tournaments" and tp.tournaments_name in db.resources


def test_dashboard_draws_the_bracket_and_standings(tp):
    tid = started(tp, "double-elimination", 5)
    first = tp.get_matches(tid, status="pending")[0]
    tp.report_result(first["id"], score1=3, score2=0)
    tp.create("<b>draft</b>", organizer_id="o", format="swiss")
    view = TournamentDashboard(tp).select(tid)
    page = view.to_html()
    assert view.last_error is None
    assert page.count("<svg") == 3 and "winners" in page and "losers" in page and "grand-final" in page
    assert f">{first['participant1Id']}<" in page and "Standings" in page
    assert "not started" in tp.dashboard().to_html()  # registered; shows the newest tournament (the draft)
    assert tp.dashboard().select(tid).to_html().count("<svg") == 3
    draft = [t for t in tp.list() if t["status"] == "draft"][0]
    assert "&lt;b&gt;draft&lt;/b&gt;" in TournamentDashboard(tp, draft["id"]).to_html()
