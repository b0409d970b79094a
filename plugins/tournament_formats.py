"""Pure tournament algorithms: seeding, pairings, bracket graphs, standings. No I/O.

A *bracket* is a JSON-safe dict kept in the tournament record. Its ``matches`` map a ref
(``"W1-1"``, ``"L2-3"``, ``"GF1"``, ``"R3-2"``…) to a match spec whose two ``slots`` say where each
participant comes from: ``["seed", id | None]`` (``None`` is a bye), ``["winner", ref]`` or
``["loser", ref]``. Who plays where is *derived* from the reported results by :func:`resolve`,
so advancement, byes and the double-elimination reset never need in-place edits.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: the formats, in display order
FORMATS = ("round-robin", "single-elimination", "double-elimination", "swiss", "groups", "league-playoffs", "ladder", "circuit")
SEEDINGS = ("manual", "random", "snake", "bracket")
#: a Swiss pairing search gives up avoiding rematches after this many steps (never reached below ~40 players)
SEARCH_BUDGET = 200_000
DEFAULT_CIRCUIT_POINTS = {1: 100, 2: 75, 3: 60, 4: 50, 5: 40, 6: 30, 7: 20, 8: 10}


class _Bye:
    """A slot that will never hold a participant."""

    def __repr__(self) -> str:
        return "BYE"


BYE: Any = _Bye()


class FormatError(ValueError):
    """A format's configuration or input does not fit (the plugin re-raises it as its own error)."""


# -- seeding -------------------------------------------------------------------------------------


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def bracket_order(size: int) -> list[int]:
    """Seed numbers (1-based) by bracket position: 1 and 2 meet only in the final, 1 plays ``size``."""
    order = [1]
    while len(order) < size:
        total = 2 * len(order) + 1
        order = [x for seed in order for x in (seed, total - seed)]
    return order


def seed_random(items: Sequence[Any], rng: random.Random | None = None) -> list[Any]:
    """A shuffled copy (``rng`` makes the draw reproducible)."""
    out = list(items)
    (rng or random.Random()).shuffle(out)
    return out


def seed_snake(items: Sequence[Any], groups: int) -> list[list[Any]]:
    """Distribute an ordered list over ``groups`` as 1→A, 2→B, …, then back (A gets 1 and 2·groups)."""
    out: list[list[Any]] = [[] for _ in range(groups)]
    for i, item in enumerate(items):
        lap, pos = divmod(i, groups)
        out[pos if lap % 2 == 0 else groups - 1 - pos].append(item)
    return out


def seed_bracket(items: Sequence[Any], size: int | None = None) -> list[Any]:
    """Ordered participants placed at bracket positions of a ``size`` bracket (``None`` = bye)."""
    size = size or next_power_of_two(len(items))
    return [items[s - 1] if s <= len(items) else None for s in bracket_order(size)]


# -- specs ---------------------------------------------------------------------------------------


def _spec(ref: str, phase: str, round_: int, number: int, slots: list[list[Any]], **extra: Any) -> dict[str, Any]:
    spec = {"ref": ref, "phase": phase, "round": round_, "number": number, "slots": slots, "group": None, "bestOf": 1}
    spec.update(extra)
    return spec


def round_robin_pairs(participants: Sequence[str], legs: int = 1) -> list[list[tuple[str | None, str | None]]]:
    """Rounds of the circle method (one pair may hold ``None``: that player rests); leg 2 swaps home/away."""
    players: list[str | None] = list(participants)
    if len(players) % 2:
        players.append(None)
    n = len(players)
    rounds: list[list[tuple[str | None, str | None]]] = []
    arr = players[:]
    for r in range(n - 1):
        pairs = []
        for i in range(n // 2):
            a, b = arr[i], arr[n - 1 - i]
            pairs.append((b, a) if (i == 0 and r % 2) else (a, b))
        rounds.append(pairs)
        arr = [arr[0], arr[-1], *arr[1:-1]]
    out = list(rounds)
    for leg in range(1, legs):
        out += [[(b, a) if leg % 2 else (a, b) for a, b in pairs] for pairs in rounds]
    return out


def round_robin_specs(participants: Sequence[str], *, legs: int, phase: str, prefix: str = "", group: str | None = None, best_of: int = 1):
    specs = {}
    for r, pairs in enumerate(round_robin_pairs(participants, legs), start=1):
        number = 0
        for a, b in pairs:
            if a is None or b is None:
                continue
            number += 1
            ref = f"{prefix}R{r}-{number}"
            specs[ref] = _spec(ref, phase, r, number, [["seed", a], ["seed", b]], group=group, bestOf=best_of)
    return specs


def single_elimination_specs(
    ordered: Sequence[str],
    *,
    phase: str = "main",
    prefix: str = "",
    best_of: int = 1,
    final_best_of: int | None = None,
    third_place: bool = False,
) -> dict[str, dict[str, Any]]:
    """Every match of a single-elimination bracket; byes go to the top seeds in round 1."""
    size = next_power_of_two(max(2, len(ordered)))
    rounds = int(math.log2(size))
    positions = seed_bracket(ordered, size)
    specs: dict[str, dict[str, Any]] = {}
    for r in range(1, rounds + 1):
        for i in range(1, size // 2**r + 1):
            ref = f"{prefix}W{r}-{i}"
            if r == 1:
                slots = [["seed", positions[2 * i - 2]], ["seed", positions[2 * i - 1]]]
            else:
                slots = [["winner", f"{prefix}W{r - 1}-{2 * i - 1}"], ["winner", f"{prefix}W{r - 1}-{2 * i}"]]
            final = r == rounds
            specs[ref] = _spec(ref, phase, r, i, slots, bestOf=(final_best_of or best_of) if final else best_of, depth=r)
            if final:
                specs[ref]["places"] = [1, 2]
    if third_place and rounds >= 2:
        semis = [f"{prefix}W{rounds - 1}-1", f"{prefix}W{rounds - 1}-2"]
        ref = f"{prefix}3P"
        specs[ref] = _spec(ref, phase, rounds, 2, [["loser", semis[0]], ["loser", semis[1]]], bestOf=best_of, depth=rounds, places=[3, 4])
        for semi in semis:
            specs[semi]["loserNext"] = ref
    _link(specs)
    return specs


def double_elimination_specs(ordered: Sequence[str], *, best_of: int = 1, final_best_of: int | None = None, reset: bool = True):
    """Winners bracket, losers bracket (drops alternate direction to delay rematches), grand final
    and, with ``reset``, a second grand final played only when the losers-bracket champion wins."""
    specs = single_elimination_specs(ordered, phase="winners", best_of=best_of)
    size = next_power_of_two(max(2, len(ordered)))
    k = int(math.log2(size))
    specs[f"W{k}-1"].pop("places", None)
    for r in range(1, k + 1):
        for i in range(1, size // 2**r + 1):
            specs[f"W{r}-{i}"]["depth"] = 0  # nobody leaves the tournament in the winners bracket
    lb_champion = ["loser", f"W{k}-1"]
    if k >= 2:
        for i in range(1, size // 4 + 1):
            ref = f"L1-{i}"
            specs[ref] = _spec(ref, "losers", 1, i, [["loser", f"W1-{2 * i - 1}"], ["loser", f"W1-{2 * i}"]], bestOf=best_of, depth=1)
        for j in range(1, k):
            count = size // 2 ** (j + 1)
            for i in range(1, count + 1):
                ref = f"L{2 * j}-{i}"
                drop = i if j % 2 == 0 else count + 1 - i
                specs[ref] = _spec(
                    ref, "losers", 2 * j, i, [["winner", f"L{2 * j - 1}-{i}"], ["loser", f"W{j + 1}-{drop}"]], bestOf=best_of, depth=2 * j
                )
            if j < k - 1:
                for i in range(1, size // 2 ** (j + 2) + 1):
                    ref = f"L{2 * j + 1}-{i}"
                    slots = [["winner", f"L{2 * j}-{2 * i - 1}"], ["winner", f"L{2 * j}-{2 * i}"]]
                    specs[ref] = _spec(ref, "losers", 2 * j + 1, i, slots, bestOf=best_of, depth=2 * j + 1)
        lb_champion = ["winner", f"L{2 * (k - 1)}-1"]
    final = final_best_of or best_of
    specs["GF1"] = _spec("GF1", "grand-final", 1, 1, [["winner", f"W{k}-1"], lb_champion], bestOf=final, depth=2 * k, places=[1, 2])
    if reset:
        specs["GF2"] = _spec(
            "GF2", "grand-final", 2, 1, [["winner", "GF1"], ["loser", "GF1"]], bestOf=final, depth=2 * k + 1, places=[1, 2]
        )
        specs["GF2"]["reset"] = True
    _link(specs)
    return specs


def _link(specs: dict[str, dict[str, Any]]) -> None:
    """Fill ``next``/``loserNext`` ([ref, slot index]) from the slots that name each match."""
    for spec in specs.values():
        if spec.get("reset"):
            continue
        for index, (kind, source) in enumerate(spec["slots"]):
            if kind in ("winner", "loser") and source in specs:
                specs[source]["next" if kind == "winner" else "loserNext"] = [spec["ref"], index]
    for spec in specs.values():
        if isinstance(spec.get("loserNext"), str):
            target = specs[spec["loserNext"]]
            spec["loserNext"] = [target["ref"], [s[1] for s in target["slots"]].index(spec["ref"])]


# -- resolving who plays ----------------------------------------------------------------------------


def resolve(matches: Mapping[str, Mapping[str, Any]], results: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """For every ref: ``p1``/``p2`` (an id, ``BYE`` or ``None`` = not known yet), ``winner``/``loser``
    and ``state``: ``empty``, ``waiting``, ``ready``, ``done``, ``bye`` (one side never comes: the
    other advances) or ``skipped`` (nobody comes, or a grand-final reset that is not needed)."""
    out: dict[str, dict[str, Any]] = {}

    def side(source: list[Any]) -> Any:
        kind, value = source
        if kind == "seed":
            return BYE if value is None else value
        outcome = visit(value)
        return outcome["winner" if kind == "winner" else "loser"]

    def visit(ref: str) -> dict[str, Any]:
        if ref in out:
            return out[ref]
        spec = matches[ref]
        p1, p2 = side(spec["slots"][0]), side(spec["slots"][1])
        row: dict[str, Any] = {"p1": p1, "p2": p2, "winner": None, "loser": None}
        if spec.get("reset"):
            # played only when the losers-bracket champion (GF1's second slot) won GF1
            first = visit(spec["slots"][0][1])
            if first["state"] != "done" and first["state"] != "bye":
                row["state"] = "empty"
            elif first["winner"] == first["p1"]:
                row.update(state="skipped", winner=BYE, loser=BYE, p1=BYE, p2=BYE)
            else:
                row.update(p1=first["p1"], p2=first["p2"])
                _decide(row, results.get(ref))
        elif p1 is BYE and p2 is BYE:
            row.update(state="skipped", winner=BYE, loser=BYE)
        elif p1 is BYE or p2 is BYE:
            present = p2 if p1 is BYE else p1
            row["state"] = "waiting" if present is None else "bye"
            if present is not None:
                row.update(winner=present, loser=BYE)
        else:
            _decide(row, results.get(ref))
        out[ref] = row
        return row

    for ref in matches:
        visit(ref)
    return out


def _decide(row: dict[str, Any], result: Mapping[str, Any] | None) -> None:
    p1, p2 = row["p1"], row["p2"]
    if p1 is None and p2 is None:
        row["state"] = "empty"
    elif p1 is None or p2 is None:
        row["state"] = "waiting"
    elif result is None:
        row["state"] = "ready"
    else:
        row.update(state="done", winner=result.get("winner"), loser=result.get("loser"))


# -- Swiss ------------------------------------------------------------------------------------------


def swiss_pairing(
    ranking: Sequence[str], played: Iterable[frozenset[str]], had_bye: Iterable[str] = ()
) -> tuple[list[tuple[str, str]], str | None, int]:
    """Pairs for the next Swiss round: each player meets the highest-ranked player still free
    whom they have not met. Returns ``(pairs, bye, rematches)``; rematches are 0 whenever some
    pairing (over every choice of bye) avoids them, else the search allows them."""
    met = set(played)
    byes = set(had_bye)
    players = list(ranking)
    candidates: list[str | None] = [None]
    if len(players) % 2:
        lowest_first = players[::-1]
        candidates = [p for p in lowest_first if p not in byes] + [p for p in lowest_first if p in byes]
    for allow in (False, True):
        budget = [SEARCH_BUDGET]
        for bye in candidates:
            pool = [p for p in players if p != bye]
            pairs = _match(pool, met, allow, budget)
            if pairs is not None:
                return pairs, bye, sum(1 for a, b in pairs if frozenset((a, b)) in met)
    raise FormatError("no Swiss pairing found")  # unreachable: with rematches allowed any even pool pairs


def _match(pool: list[str], met: set[frozenset[str]], allow: bool, budget: list[int]) -> list[tuple[str, str]] | None:
    if not pool:
        return []
    budget[0] -= 1
    if budget[0] < 0 and not allow:
        return None
    first, rest = pool[0], pool[1:]
    options = [p for p in rest if frozenset((first, p)) not in met]
    if allow:
        options += [p for p in rest if frozenset((first, p)) in met]
    for other in options:
        tail = _match([p for p in rest if p != other], met, allow, budget)
        if tail is not None:
            return [(first, other), *tail]
        if allow:
            break  # with rematches allowed the first choice always completes
    return None


# -- standings --------------------------------------------------------------------------------------


def table_standings(
    participants: Sequence[str],
    games: Iterable[Mapping[str, Any]],
    *,
    points_win: float = 3,
    points_draw: float = 1,
    points_loss: float = 0,
    buchholz: bool = False,
) -> list[dict[str, Any]]:
    """League table from finished games (``p1, p2, score1, score2, winner, status``; a ``bye`` game
    is a win without scores). Order: points, score difference, score for, wins, then seed."""
    rows = {
        p: {"participantId": p, "played": 0, "wins": 0, "draws": 0, "losses": 0, "scoreFor": 0, "scoreAgainst": 0, "points": 0}
        for p in participants
    }
    opponents: dict[str, list[str]] = {p: [] for p in participants}
    for game in games:
        p1, p2 = game["p1"], game["p2"]
        if game.get("status") == "bye":
            present = p1 if p1 in rows else p2
            if present in rows:
                rows[present]["wins"] += 1
                rows[present]["points"] += points_win
            continue
        if p1 not in rows or p2 not in rows:
            continue
        s1, s2 = float(game.get("score1") or 0), float(game.get("score2") or 0)
        if game.get("status") != "walkover":
            rows[p1]["scoreFor"] += s1
            rows[p1]["scoreAgainst"] += s2
            rows[p2]["scoreFor"] += s2
            rows[p2]["scoreAgainst"] += s1
        opponents[p1].append(p2)
        opponents[p2].append(p1)
        for p in (p1, p2):
            rows[p]["played"] += 1
        winner = game.get("winner")
        if winner is None:
            for p in (p1, p2):
                rows[p]["draws"] += 1
                rows[p]["points"] += points_draw
        else:
            loser = p2 if winner == p1 else p1
            rows[winner]["wins"] += 1
            rows[winner]["points"] += points_win
            rows[loser]["losses"] += 1
            rows[loser]["points"] += points_loss
    seed = {p: i for i, p in enumerate(participants)}
    for row in rows.values():
        row["scoreDiff"] = row["scoreFor"] - row["scoreAgainst"]
        for key in ("scoreFor", "scoreAgainst", "scoreDiff", "points"):
            row[key] = _num(row[key])
        if buchholz:
            row["buchholz"] = _num(sum(rows[o]["points"] for o in opponents[row["participantId"]]))
    keys = ("points", "buchholz", "scoreDiff", "scoreFor", "wins") if buchholz else ("points", "scoreDiff", "scoreFor", "wins")
    ordered = sorted(rows.values(), key=lambda r: (*(-r[k] for k in keys), seed[r["participantId"]]))
    for rank, row in enumerate(ordered, start=1):
        row["rank"] = rank
    return ordered


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def elimination_standings(
    participants: Sequence[str], matches: Mapping[str, Mapping[str, Any]], resolved: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Placements of a knockout: the final (or third-place match) fixes its two places; everyone
    else shares the place of the stage they were knocked out in. Players still in have none."""
    rows = {
        p: {"participantId": p, "placement": None, "wins": 0, "losses": 0, "eliminatedIn": None, "status": "active"} for p in participants
    }
    fixed: dict[str, int] = {}
    depth: dict[str, int] = {}
    superseded = {spec["slots"][0][1] for spec in matches.values() if spec.get("reset") and resolved[spec["ref"]]["state"] != "skipped"}
    for ref, spec in matches.items():
        state = resolved[ref]
        if state["state"] != "done":
            continue
        winner, loser = state["winner"], state["loser"]
        if winner in rows:
            rows[winner]["wins"] += 1
        if loser in rows:
            rows[loser]["losses"] += 1
        if spec.get("places") and ref not in superseded:
            fixed[winner], fixed[loser] = spec["places"]
        elif spec.get("loserNext") is None and ref not in superseded and loser in rows:
            depth[loser] = spec.get("depth", spec["round"])
            rows[loser]["eliminatedIn"] = ref
    total = len(rows)
    for p, level in depth.items():
        # everyone not knocked out at this stage or earlier is ranked above
        rows[p]["placement"] = 1 + total - sum(1 for d in depth.values() if d <= level)
    for p, place in fixed.items():
        if p in rows:
            rows[p]["placement"] = place
    for row in rows.values():
        if row["placement"] is not None:
            row["status"] = "eliminated" if row["placement"] > 1 else "champion"
    active = [r for r in rows.values() if r["placement"] is None]
    placed = sorted((r for r in rows.values() if r["placement"] is not None), key=lambda r: r["placement"])
    return active + placed if active else placed


# -- ladder ------------------------------------------------------------------------------------------


def elo(rating_a: float, rating_b: float, score_a: float, k: float = 32) -> tuple[float, float]:
    """New ratings after a game (``score_a``: 1 win, 0.5 draw, 0 loss for A)."""
    expected = 1 / (1 + 10 ** ((rating_b - rating_a) / 400))
    delta = k * (score_a - expected)
    return rating_a + delta, rating_b - delta


def ladder_rankings(
    participants: Sequence[str], challenges: Iterable[Mapping[str, Any]], *, initial_rating: float = 1000, k: float = 32
) -> list[dict[str, Any]]:
    """Replay finished challenges in order: Elo ratings move, and a challenger who wins takes the
    defender's rung (everyone between moves down one)."""
    order = list(participants)
    stats = {p: {"participantId": p, "rating": float(initial_rating), "wins": 0, "losses": 0, "draws": 0} for p in participants}
    for game in challenges:
        challenger, defender, winner = game["p1"], game["p2"], game.get("winner")
        if challenger not in stats or defender not in stats:
            continue
        score = 0.5 if winner is None else (1.0 if winner == challenger else 0.0)
        stats[challenger]["rating"], stats[defender]["rating"] = elo(stats[challenger]["rating"], stats[defender]["rating"], score, k)
        if winner is None:
            stats[challenger]["draws"] += 1
            stats[defender]["draws"] += 1
            continue
        loser = defender if winner == challenger else challenger
        stats[winner]["wins"] += 1
        stats[loser]["losses"] += 1
        if winner == challenger and order.index(challenger) > order.index(defender):
            order.remove(challenger)
            order.insert(order.index(defender), challenger)
    out = []
    for rank, p in enumerate(order, start=1):
        row = dict(stats[p])
        row["rank"] = rank
        row["rating"] = round(row["rating"], 2)
        out.append(row)
    return out


# -- circuit -----------------------------------------------------------------------------------------


def circuit_standings(events: Iterable[Mapping[str, Any]], points_table: Mapping[Any, float], *, count_best: int | None = None):
    """Points per participant over every event (placement → points × the event's multiplier);
    with ``count_best`` only the best N results count. Order: points, best placement, events."""
    table = {int(k): float(v) for k, v in points_table.items()}
    results: dict[str, list[tuple[float, int]]] = {}
    for event in events:
        multiplier = float(event.get("multiplier", 1))
        for row in event["results"]:
            pts = table.get(int(row["placement"]), 0.0) * multiplier
            results.setdefault(row["participantId"], []).append((pts, int(row["placement"])))
    rows = []
    for pid, got in results.items():
        counted = sorted((p for p, _ in got), reverse=True)[: count_best or None]
        rows.append({"participantId": pid, "points": _num(sum(counted)), "events": len(got), "bestPlacement": min(pl for _, pl in got)})
    rows.sort(key=lambda r: (-r["points"], r["bestPlacement"], -r["events"], r["participantId"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


# -- formats -----------------------------------------------------------------------------------------

SETTLED = ("done", "bye", "skipped")
#: options every format takes
COMMON_CONFIG: dict[str, Any] = {
    "seeding": "manual",
    "random_seed": None,
    "min_participants": 2,
    "max_participants": None,
    "require_confirmation": False,
    "check_in_required": False,
    "best_of": 1,
}
_TABLE = {"points_win": 3, "points_draw": 1, "points_loss": 0}


class Format:
    """One tournament format: its options, the bracket it starts with, what it adds as results
    come in, its standings and when it is over."""

    name = ""
    config: dict[str, Any] = {}
    draws = False  # may a match end without a winner?
    needs_start = True  # False: usable without start_tournament (circuit)

    def defaults(self) -> dict[str, Any]:
        return {**COMMON_CONFIG, **self.config}

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        return []

    def generate(self, ordered: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def advance(self, bracket: dict[str, Any], resolved: Mapping[str, Any], games: Mapping[str, Any], config: Mapping[str, Any]):
        """New match specs now due (added to ``bracket['matches']`` too); none by default."""
        return []

    def is_complete(self, bracket: Mapping[str, Any], resolved: Mapping[str, Any]) -> bool:
        matches = bracket.get("matches") or {}
        return bool(matches) and all(resolved[ref]["state"] in SETTLED for ref in matches)

    def standings(self, bracket: Mapping[str, Any], resolved: Mapping[str, Any], games: Mapping[str, Any], config: Mapping[str, Any]):
        return table_standings(bracket["seeds"], _ordered_games(bracket, games), **_table_options(config))

    def winner(self, bracket: Mapping[str, Any], resolved: Mapping[str, Any], games: Mapping[str, Any], config: Mapping[str, Any]):
        rows = self.standings(bracket, resolved, games, config)
        return rows[0]["participantId"] if rows else None


def _table_options(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: config.get(k, v) for k, v in _TABLE.items()}


def _ordered_games(bracket: Mapping[str, Any], games: Mapping[str, Any], phase: str | None = None, group: str | None = None):
    specs = bracket.get("matches") or {}
    refs = [
        r for r in specs if r in games and (phase is None or specs[r]["phase"] == phase) and (group is None or specs[r]["group"] == group)
    ]
    refs.sort(key=lambda r: (specs[r]["round"], specs[r]["number"]))
    return [games[r] for r in refs]


def _check_int(config: Mapping[str, Any], name: str, low: int, errors: list[str], optional: bool = False) -> None:
    value = config.get(name)
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        errors.append(f"{name} must be an integer >= {low}{' or None' if optional else ''}, got {value!r}")


def _check_best_of(config: Mapping[str, Any], errors: list[str], *names: str) -> None:
    for name in ("best_of", *names):
        value = config.get(name)
        if value is None and name != "best_of":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
            errors.append(f"{name} must be an odd integer >= 1 (1, 3, 5…), got {value!r}")


class RoundRobin(Format):
    name = "round-robin"
    config = {"legs": 1, **_TABLE}
    draws = True

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        _check_int(config, "legs", 1, errors)
        _check_best_of(config, errors)
        return errors

    def generate(self, ordered: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        specs = round_robin_specs(ordered, legs=config["legs"], phase="main", best_of=config["best_of"])
        return {"matches": specs}


class SingleElimination(Format):
    name = "single-elimination"
    config = {"final_best_of": None, "third_place": False}

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        _check_best_of(config, errors, "final_best_of")
        return errors

    def generate(self, ordered: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        specs = single_elimination_specs(
            ordered, best_of=config["best_of"], final_best_of=config["final_best_of"], third_place=bool(config["third_place"])
        )
        return {"matches": specs, "size": next_power_of_two(len(ordered))}

    def standings(self, bracket, resolved, games, config):
        return elimination_standings(bracket["seeds"], bracket["matches"], resolved)

    def winner(self, bracket, resolved, games, config):
        for ref, spec in bracket["matches"].items():
            if spec.get("places") == [1, 2] and resolved[ref]["state"] in ("done", "bye") and not _superseded(bracket, resolved, ref):
                return resolved[ref]["winner"]
        return None


def _superseded(bracket: Mapping[str, Any], resolved: Mapping[str, Any], ref: str) -> bool:
    return any(s.get("reset") and s["slots"][0][1] == ref and resolved[s["ref"]]["state"] != "skipped" for s in bracket["matches"].values())


class DoubleElimination(SingleElimination):
    name = "double-elimination"
    config = {"final_best_of": None, "grand_final_reset": True}

    def generate(self, ordered: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        specs = double_elimination_specs(
            ordered, best_of=config["best_of"], final_best_of=config["final_best_of"], reset=bool(config["grand_final_reset"])
        )
        return {"matches": specs, "size": next_power_of_two(len(ordered))}


class Swiss(Format):
    name = "swiss"
    config = {"rounds": None, **_TABLE}
    draws = True

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        _check_int(config, "rounds", 1, errors, optional=True)
        _check_best_of(config, errors)
        return errors

    def total_rounds(self, count: int, config: Mapping[str, Any]) -> int:
        return config.get("rounds") or max(1, math.ceil(math.log2(max(2, count))))

    def generate(self, ordered: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        half = len(ordered) // 2
        pairs = [(ordered[i], ordered[i + half]) for i in range(half)]
        bye = ordered[-1] if len(ordered) % 2 else None
        return {"matches": self._round(1, pairs, bye, config), "rounds": self.total_rounds(len(ordered), config), "rematches": 0}

    def _round(self, round_: int, pairs: Sequence[tuple[str, str]], bye: str | None, config: Mapping[str, Any]) -> dict[str, Any]:
        specs = {}
        for i, (a, b) in enumerate(pairs, start=1):
            specs[f"S{round_}-{i}"] = _spec(f"S{round_}-{i}", "swiss", round_, i, [["seed", a], ["seed", b]], bestOf=config["best_of"])
        if bye is not None:
            ref = f"S{round_}-{len(pairs) + 1}"
            specs[ref] = _spec(ref, "swiss", round_, len(pairs) + 1, [["seed", bye], ["seed", None]])
        return specs

    def advance(self, bracket, resolved, games, config):
        matches = bracket["matches"]
        current = max(s["round"] for s in matches.values())
        if current >= bracket["rounds"] or any(resolved[r]["state"] not in SETTLED for r, s in matches.items() if s["round"] == current):
            return []
        ranking = [row["participantId"] for row in self.standings(bracket, resolved, games, config)]
        played = {frozenset((resolved[r]["p1"], resolved[r]["p2"])) for r in matches if resolved[r]["state"] == "done"}
        had_bye = {resolved[r]["p1"] for r in matches if resolved[r]["state"] == "bye"}
        pairs, bye, rematches = swiss_pairing(ranking, played, had_bye)
        bracket["rematches"] = bracket.get("rematches", 0) + rematches
        specs = self._round(current + 1, pairs, bye, config)
        matches.update(specs)
        return list(specs.values())

    def is_complete(self, bracket, resolved) -> bool:
        rounds = {s["round"] for s in bracket["matches"].values()}
        return max(rounds) >= bracket["rounds"] and super().is_complete(bracket, resolved)

    def standings(self, bracket, resolved, games, config):
        return table_standings(bracket["seeds"], _ordered_games(bracket, games), buchholz=True, **_table_options(config))


class Groups(Format):
    """Round-robin groups (snake-seeded), then the best of each group into a knockout."""

    name = "groups"
    config = {"group_count": 2, "advance_per_group": 2, "legs": 1, "playoffs": True, "third_place": False, "final_best_of": None, **_TABLE}
    draws = True
    stage = "groups"

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        _check_int(config, "group_count", 1, errors)
        _check_int(config, "advance_per_group", 1, errors)
        _check_int(config, "legs", 1, errors)
        _check_best_of(config, errors, "final_best_of")
        if errors:
            return errors
        groups = config["group_count"]
        if count < 2 * groups:
            errors.append(f"group_count={groups} needs at least {2 * groups} participants (2 per group), got {count}")
        elif config["playoffs"] and config["advance_per_group"] > count // groups:
            errors.append(
                f"advance_per_group={config['advance_per_group']} is more than the smallest group ({count // groups} participants)"
            )
        elif config["playoffs"] and config["advance_per_group"] * groups < 2:
            errors.append("the playoffs need at least 2 qualifiers: raise advance_per_group or group_count")
        return errors

    def generate(self, ordered: Sequence[str], config: Mapping[str, Any]) -> dict[str, Any]:
        names = _group_names(config["group_count"])
        groups = dict(zip(names, seed_snake(ordered, config["group_count"])))
        specs: dict[str, Any] = {}
        for name, members in groups.items():
            prefix = f"G{name}-" if len(groups) > 1 else ""
            group = name if len(groups) > 1 else None
            specs.update(
                round_robin_specs(members, legs=config["legs"], phase=self.stage, prefix=prefix, group=group, best_of=config["best_of"])
            )
        return {"matches": specs, "groups": groups, "stage": self.stage, "playoffs": bool(config["playoffs"])}

    def group_tables(self, bracket, games, config) -> dict[str, list[dict[str, Any]]]:
        single = len(bracket["groups"]) == 1
        return {
            name: table_standings(members, _ordered_games(bracket, games, self.stage, None if single else name), **_table_options(config))
            for name, members in bracket["groups"].items()
        }

    def qualifiers(self, bracket, games, config) -> list[str]:
        tables = self.group_tables(bracket, games, config)
        return [
            table[place]["participantId"] for place in range(config["advance_per_group"]) for table in tables.values() if place < len(table)
        ]

    def advance(self, bracket, resolved, games, config):
        matches = bracket["matches"]
        if bracket["stage"] != self.stage or not config["playoffs"]:
            return []
        if any(resolved[r]["state"] not in SETTLED for r, s in matches.items() if s["phase"] == self.stage):
            return []
        specs = single_elimination_specs(
            self.qualifiers(bracket, games, config),
            phase="playoffs",
            prefix="P",
            best_of=config["best_of"],
            final_best_of=config["final_best_of"],
            third_place=bool(config["third_place"]),
        )
        bracket["stage"] = "playoffs"
        matches.update(specs)
        return list(specs.values())

    def is_complete(self, bracket, resolved) -> bool:
        return (bracket["stage"] == "playoffs" or not self._playoffs(bracket)) and super().is_complete(bracket, resolved)

    def _playoffs(self, bracket: Mapping[str, Any]) -> bool:
        return bool(bracket.get("playoffs", True))

    def standings(self, bracket, resolved, games, config):
        tables = self.group_tables(bracket, games, config)
        rows = []
        for name, table in tables.items():
            for row in table:
                rows.append({**row, "group": name if len(tables) > 1 else None, "groupRank": row["rank"]})
        # group position first, then points across groups
        rows.sort(key=lambda r: (r["groupRank"], -r["points"], -r["scoreDiff"], -r["scoreFor"]))
        if bracket["stage"] == "playoffs":
            playoff = {k: v for k, v in bracket["matches"].items() if v["phase"] == "playoffs"}
            qualified = self.qualifiers(bracket, games, config)
            knockout = {r["participantId"]: r for r in elimination_standings(qualified, playoff, resolved)}
            top = [{**next(x for x in rows if x["participantId"] == p), **{"placement": knockout[p]["placement"]}} for p in knockout]
            top.sort(key=lambda r: (r["placement"] is not None, r["placement"] or 0))
            rest = [r for r in rows if r["participantId"] not in knockout]
            for place, row in enumerate(rest, start=len(top) + 1):
                row["placement"] = place
            rows = top + rest
        for rank, row in enumerate(rows, start=1):
            row["rank"] = rank
        return rows

    def winner(self, bracket, resolved, games, config):
        if bracket["stage"] == "playoffs":
            return SingleElimination().winner(
                {"matches": {k: v for k, v in bracket["matches"].items() if v["phase"] == "playoffs"}}, resolved, {}, config
            )
        return super().winner(bracket, resolved, games, config)


def _group_names(count: int) -> list[str]:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [letters[i] if count <= 26 else f"G{i + 1}" for i in range(count)]


class LeaguePlayoffs(Groups):
    """A round-robin league, then its top ``playoff_size`` into a knockout."""

    name = "league-playoffs"
    config = {"legs": 1, "playoff_size": 4, "third_place": False, "final_best_of": None, **_TABLE}
    stage = "league"

    def _cfg(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {**config, "group_count": 1, "advance_per_group": config["playoff_size"], "playoffs": True}

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        _check_int(config, "playoff_size", 2, errors)
        if errors:
            return errors
        if config["playoff_size"] > count:
            return [f"playoff_size={config['playoff_size']} is more than the {count} participants"]
        return super().validate(count, self._cfg(config))

    def generate(self, ordered, config):
        return super().generate(ordered, self._cfg(config))

    def advance(self, bracket, resolved, games, config):
        return super().advance(bracket, resolved, games, self._cfg(config))

    def standings(self, bracket, resolved, games, config):
        return super().standings(bracket, resolved, games, self._cfg(config))

    def winner(self, bracket, resolved, games, config):
        return super().winner(bracket, resolved, games, self._cfg(config))


class Ladder(Format):
    """A ranking ladder: players challenge those up to ``challenge_range`` rungs above; Elo ratings."""

    name = "ladder"
    config = {"challenge_range": 3, "k_factor": 32, "initial_rating": 1000}
    draws = True

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        _check_int(config, "challenge_range", 1, errors)
        for name in ("k_factor", "initial_rating"):
            if isinstance(config.get(name), bool) or not isinstance(config.get(name), (int, float)) or config[name] < 0:
                errors.append(f"{name} must be a number >= 0, got {config.get(name)!r}")
        _check_best_of(config, errors)
        return errors

    def generate(self, ordered, config):
        return {"matches": {}}

    def is_complete(self, bracket, resolved) -> bool:
        return False  # a ladder runs until complete() is called

    def standings(self, bracket, resolved, games, config):
        challenges = _ordered_games(bracket, games)
        return ladder_rankings(bracket["seeds"], challenges, initial_rating=config["initial_rating"], k=config["k_factor"])

    def challenge_spec(self, bracket, resolved, games, config, challenger: str, defender: str) -> dict[str, Any]:
        rankings = {r["participantId"]: r["rank"] for r in self.standings(bracket, resolved, games, config)}
        for who, label in ((challenger, "challenger"), (defender, "defender")):
            if who not in rankings:
                raise FormatError(f"{label} {who!r} is not on this ladder; participants: {', '.join(rankings)}")
        if challenger == defender:
            raise FormatError("a participant cannot challenge themselves")
        gap = rankings[challenger] - rankings[defender]
        if not 1 <= gap <= config["challenge_range"]:
            raise FormatError(
                f"{challenger!r} (rank {rankings[challenger]}) may challenge only players 1 to {config['challenge_range']} "
                f"rungs above (challenge_range); {defender!r} is rank {rankings[defender]}"
            )
        busy = {resolved[r][s] for r in bracket["matches"] for s in ("p1", "p2") if resolved[r]["state"] not in SETTLED}
        for who in (challenger, defender):
            if who in busy:
                raise FormatError(f"{who!r} already has an open challenge; report it first")
        number = len(bracket["matches"]) + 1
        spec = _spec(f"C{number}", "ladder", number, 1, [["seed", challenger], ["seed", defender]], bestOf=config["best_of"])
        bracket["matches"][spec["ref"]] = spec
        return spec


class Circuit(Format):
    """Points across a series of events (each event: placements → points × multiplier)."""

    name = "circuit"
    config = {"points_table": dict(DEFAULT_CIRCUIT_POINTS), "count_best": None, "min_participants": 0}
    needs_start = False

    def validate(self, count: int, config: Mapping[str, Any]) -> list[str]:
        errors: list[str] = []
        table = config.get("points_table")
        if not isinstance(table, Mapping) or not table:
            errors.append(f"points_table must be a non-empty dict placement → points, like {{1: 100, 2: 75}}, got {table!r}")
        else:
            for key, value in table.items():
                try:
                    ok = int(key) >= 1 and isinstance(value, (int, float)) and not isinstance(value, bool)
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    errors.append(f"points_table entry {key!r}: {value!r} must map a placement >= 1 to a number of points")
        _check_int(config, "count_best", 1, errors, optional=True)
        return errors

    def generate(self, ordered, config):
        return {"matches": {}, "events": []}

    def is_complete(self, bracket, resolved) -> bool:
        return False

    def standings(self, bracket, resolved, games, config):
        return circuit_standings(bracket.get("events") or [], config["points_table"], count_best=config["count_best"])


REGISTRY: dict[str, Format] = {
    f.name: f for f in (RoundRobin(), SingleElimination(), DoubleElimination(), Swiss(), Groups(), LeaguePlayoffs(), Ladder(), Circuit())
}
