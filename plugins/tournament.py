"""``TournamentPlugin``: tournaments kept in S3 — registrations, seeding, schedules, results, standings, brackets.

Three resources, the s3db.js names and fields: ``plg_tournaments`` (the tournament, its
``config`` and its ``bracket``), ``plg_tournament_matches`` and ``plg_tournament_registrations``::

    db.use_plugin(TournamentPlugin())
    t = db.tournament.create("Spring cup", organizer_id="club", format="double-elimination")
    db.tournament.open_registration(t["id"])
    for team in teams:
        db.tournament.register(t["id"], team)
    db.tournament.start_tournament(t["id"])
    match = db.tournament.get_matches(t["id"], status="pending")[0]
    db.tournament.report_result(match["id"], score1=2, score2=1)
    db.tournament.get_standings(t["id"])

Formats (``tournament_formats``): round-robin, single and double elimination, Swiss, groups,
league + playoffs, ladder (Elo) and circuit. Unlike the Node plugin, a match's ``nextMatchId``
names a real match record (Node gave matches fresh ids, so winners never advanced), the slot a
winner fills is fixed by the bracket rather than "the first free one", byes advance on their own
(also through a losers bracket), draws are refused where a format needs a winner, results cannot
be reported twice, and the double-elimination grand final is replayed only when the
losers-bracket champion wins it.
"""

from __future__ import annotations

import difflib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from s3db_nb.plugin_api import (
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    Plugin,
    PluginError,
    Record,
    Resource,
    get_namespaced_resource_name,
    new_id,
)

from .tournament_formats import BYE, FORMATS, REGISTRY, SEEDINGS, SETTLED, Format, FormatError, resolve, seed_random

STATUSES = ("draft", "registration", "registration-closed", "in-progress", "completed", "cancelled")
REGISTRATION_STATUSES = ("pending", "confirmed", "checked-in", "withdrawn")
MATCH_OPEN = ("pending", "scheduled", "in-progress")
MATCH_DONE = ("completed", "walkover")
PARTICIPANT_TYPES = ("team", "player")
_FORBIDDEN = set("/\\=%")

TOURNAMENT_ATTRIBUTES = {
    "name": "string|required",
    "organizerId": "string|required",
    "format": "string|required",
    "participantType": "string|required",
    "participantResource": "string|optional",
    "status": "string|required",
    "config": "object|optional",
    "participants": "array|items:string|optional",
    "bracket": "object|optional",
    "standings": "array|optional",
    "currentPhase": "string|optional",
    "currentRound": "number|optional|default:0",
    "metadata": "object|optional",
    "startedAt": "number|optional",
    "completedAt": "number|optional",
}
TOURNAMENT_PARTITIONS = {
    "byOrganizer": {"fields": {"organizerId": "string"}},
    "byStatus": {"fields": {"status": "string"}},
    "byFormat": {"fields": {"format": "string"}},
}
MATCH_ATTRIBUTES = {
    "tournamentId": "string|required",
    "phase": "string|required",
    "round": "number|required",
    "matchNumber": "number|required",
    "groupId": "string|optional",
    "participant1Id": "string|optional",
    "participant2Id": "string|optional",
    "bestOf": "number|optional|default:1",
    "games": "array|optional",
    "score1": "number|optional|default:0",
    "score2": "number|optional|default:0",
    "winnerId": "string|optional",
    "loserId": "string|optional",
    "status": "string|required",
    "nextMatchId": "string|optional",
    "loserNextMatchId": "string|optional",
    "scheduledAt": "number|optional",
    "startedAt": "number|optional",
    "completedAt": "number|optional",
    "metadata": "object|optional",
}
MATCH_PARTITIONS = {
    "byTournament": {"fields": {"tournamentId": "string"}},
    "byStatus": {"fields": {"status": "string"}},
    "byPhase": {"fields": {"phase": "string"}},
}
REGISTRATION_ATTRIBUTES = {
    "tournamentId": "string|required",
    "participantId": "string|required",
    "seed": "number|optional",
    "status": "string|required",
    "registeredAt": "number|optional",
    "confirmedAt": "number|optional",
    "checkedInAt": "number|optional",
    "metadata": "object|optional",
}
REGISTRATION_PARTITIONS = {
    "byTournament": {"fields": {"tournamentId": "string"}},
    "byParticipant": {"fields": {"participantId": "string"}},
    "byStatus": {"fields": {"status": "string"}},
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _int(value: Any) -> int:
    return int(value) if _is_number(value) else 0


class TournamentPlugin(Plugin):
    """Tournament engine. Options: ``resource_names`` (``{"tournaments": ..., "matches": ...,
    "registrations": ...}`` to rename the three resources) and ``clock`` (seconds since the
    epoch, for tests). Every method takes and returns s3db.js field names (``participant1Id``…).
    """

    defaults = {"resource_names": None, "clock": None}

    def __init__(self, options: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        super().__init__(options, **more)
        names = self.options["resource_names"] or {}
        if not isinstance(names, Mapping) or set(names) - {"tournaments", "matches", "registrations"}:
            raise PluginError(
                f"TournamentPlugin: resource_names must be a dict with keys tournaments, matches, registrations, got {names!r}"
            )
        if self.options["clock"] is not None and not callable(self.options["clock"]):
            raise PluginError("TournamentPlugin: clock must be a callable giving seconds since the epoch (like time.time)")
        self.clock: Callable[[], float] = self.options["clock"] or time.time
        self.tournaments_name = get_namespaced_resource_name(names.get("tournaments") or "plg_tournaments", self.namespace)
        self.matches_name = get_namespaced_resource_name(names.get("matches") or "plg_tournament_matches", self.namespace)
        self.registrations_name = get_namespaced_resource_name(names.get("registrations") or "plg_tournament_registrations", self.namespace)
        self.stats = {"tournamentsCreated": 0, "matchesPlayed": 0, "registrations": 0, "errors": 0}

    # -- lifecycle ----------------------------------------------------------------------------

    def on_install(self) -> None:
        db = self._db()
        specs = (
            (self.tournaments_name, TOURNAMENT_ATTRIBUTES, TOURNAMENT_PARTITIONS),
            (self.matches_name, MATCH_ATTRIBUTES, MATCH_PARTITIONS),
            (self.registrations_name, REGISTRATION_ATTRIBUTES, REGISTRATION_PARTITIONS),
        )
        for name, attributes, partitions in specs:
            db.create_resource(name, attributes, behavior="body-overflow", partitions=partitions, timestamps=True, created_by=self.name)
            if name not in self._owned:
                self._owned.append(name)
        self.emit("plg:tournament:installed", {"formats": list(FORMATS), "timestamp": self._now()})

    @property
    def tournaments(self) -> Resource:
        return self._db().resource(self.tournaments_name)

    @property
    def matches(self) -> Resource:
        return self._db().resource(self.matches_name)

    @property
    def registrations(self) -> Resource:
        return self._db().resource(self.registrations_name)

    def _now(self) -> int:
        return int(self.clock() * 1000)

    # -- tournaments --------------------------------------------------------------------------

    def get_available_formats(self) -> list[str]:
        """The format names ``create(format=...)`` takes."""
        return list(FORMATS)

    def get_format_metadata(self) -> dict[str, dict[str, Any]]:
        """Per format: its default config, whether draws are allowed, whether it needs a start."""
        return {name: {"defaultConfig": f.defaults(), "draws": f.draws, "needsStart": f.needs_start} for name, f in REGISTRY.items()}

    def get_stats(self) -> dict[str, int]:
        """Counters of this process: tournaments created, matches played, registrations."""
        return dict(self.stats)

    def create(
        self,
        name: str | Mapping[str, Any],
        *,
        organizer_id: str | None = None,
        format: str | None = None,
        participant_type: str = "team",
        participant_resource: str | None = None,
        config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Record:
        """A new tournament in ``draft`` (1 PUT). ``config`` takes the format's options (see
        ``get_format_metadata()``); unknown options are refused. A dict first argument works too."""
        if isinstance(name, Mapping):  # s3db.js style: create({name, organizerId, format, ...})
            opts = dict(name)
            name = opts.pop("name", None)
            organizer_id = opts.pop("organizerId", opts.pop("organizer_id", organizer_id))
            format = opts.pop("format", format)
            participant_type = opts.pop("participantType", opts.pop("participant_type", participant_type))
            participant_resource = opts.pop("participantResource", opts.pop("participant_resource", participant_resource))
            config = opts.pop("config", config)
            metadata = opts.pop("metadata", metadata)
            if opts:
                raise InvalidArgumentError(f"create(): unknown field(s) {', '.join(sorted(opts))}")
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError(f"create(): name must be a non-empty string, got {name!r}")
        if not isinstance(organizer_id, str) or not organizer_id:
            raise InvalidArgumentError(f"create(): organizer_id is required (the organiser's id, a non-empty string), got {organizer_id!r}")
        _check_segment("organizer_id", organizer_id)
        fmt = _format(format)
        if participant_type not in PARTICIPANT_TYPES:
            raise InvalidArgumentError(
                f"create(): participant_type must be one of {', '.join(PARTICIPANT_TYPES)}, got {participant_type!r}"
            )
        full = _config(fmt, config)
        now = self._now()
        bracket = None
        if not fmt.needs_start:
            bracket = {**fmt.generate([], full), "seeds": [], "format": fmt.name}
        record = self.tournaments.insert(
            {
                "id": new_id(),
                "name": name,
                "organizerId": organizer_id,
                "format": fmt.name,
                "participantType": participant_type,
                "participantResource": participant_resource,
                "status": "draft",
                "config": full,
                "participants": [],
                "bracket": bracket,
                "standings": [],
                "currentPhase": None,
                "currentRound": 0,
                "metadata": dict(metadata or {}),
                "startedAt": None,
                "completedAt": None,
            }
        )
        self.stats["tournamentsCreated"] += 1
        self.emit("plg:tournament:created", {"tournament": record, "timestamp": now})
        return record

    def get(self, tournament_id: str) -> Record:
        """The tournament record (1 GET); ``NotFoundError`` naming the id when there is none."""
        if not isinstance(tournament_id, str) or not tournament_id:
            raise InvalidArgumentError(f"tournament_id must be a non-empty string, got {tournament_id!r}")
        record = self.tournaments.get_or_none(tournament_id)
        if record is None:
            raise NotFoundError(f"no tournament {tournament_id!r} in {self.tournaments_name}; list() shows the existing ones")
        return record

    def update(self, tournament_id: str, data: Mapping[str, Any]) -> Record:
        """Change fields of a tournament; format, participant type and organiser are fixed once it started."""
        current = self.get(tournament_id)
        if current["status"] == "in-progress":
            for field in ("format", "participantType", "organizerId"):
                if field in data and data[field] != current[field]:
                    raise InvalidArgumentError(f"cannot change {field} of tournament {tournament_id!r} while it is in progress")
        if "format" in data:
            _format(data["format"])
        if "status" in data and data["status"] not in STATUSES:
            raise InvalidArgumentError(f"status must be one of {', '.join(STATUSES)}, got {data['status']!r}")
        if "config" in data:
            data = {**data, "config": _config(_format(data.get("format", current["format"])), data["config"])}
        record = self.tournaments.update(tournament_id, dict(data))
        self.emit("plg:tournament:updated", {"tournament": record})
        return record

    def delete(self, tournament_id: str) -> None:
        """Delete a tournament with its matches and registrations (refused while in progress: cancel() it first)."""
        current = self.get(tournament_id)
        if current["status"] == "in-progress":
            raise InvalidArgumentError(f"tournament {tournament_id!r} is in progress: cancel() it before deleting it")
        self.matches.delete_many([m["id"] for m in self._match_records(tournament_id)])
        self.registrations.delete_many([r["id"] for r in self._registration_records(tournament_id)])
        self.tournaments.delete(tournament_id)
        self.emit("plg:tournament:deleted", {"tournamentId": tournament_id})

    def list(
        self, *, organizer_id: str | None = None, status: str | None = None, format: str | None = None, limit: int = 100
    ) -> list[Record]:
        """Tournaments, through the ``byOrganizer`` / ``byStatus`` / ``byFormat`` partition when one is given."""
        filters = {k: v for k, v in (("organizerId", organizer_id), ("status", status), ("format", format)) if v is not None}
        if status is not None and status not in STATUSES:
            raise InvalidArgumentError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        return self.tournaments.query(filters, limit=limit)

    # -- tournament lifecycle ---------------------------------------------------------------------

    def _transition(self, tournament_id: str, allowed: Sequence[str], status: str, event: str, **extra: Any) -> Record:
        current = self.get(tournament_id)
        if current["status"] not in allowed:
            raise InvalidArgumentError(
                f"cannot move tournament {tournament_id!r} to {status!r}: it is {current['status']!r} (allowed from: {', '.join(allowed)})"
            )
        record = self.tournaments.update(tournament_id, {"status": status, **extra})
        self.emit(event, {"tournamentId": tournament_id})
        return record

    def open_registration(self, tournament_id: str) -> Record:
        """``draft`` → ``registration``."""
        return self._transition(tournament_id, ("draft",), "registration", "plg:tournament:registration-opened")

    def close_registration(self, tournament_id: str) -> Record:
        """``registration`` → ``registration-closed``."""
        return self._transition(tournament_id, ("registration",), "registration-closed", "plg:tournament:registration-closed")

    def cancel(self, tournament_id: str, reason: str = "") -> Record:
        """Cancel a tournament that is not completed (the reason is kept in ``metadata``)."""
        current = self.get(tournament_id)
        metadata = {**(current.get("metadata") or {}), "cancelReason": reason, "cancelledAt": self._now()}
        allowed = [s for s in STATUSES if s not in ("completed", "cancelled")]
        return self._transition(tournament_id, allowed, "cancelled", "plg:tournament:cancelled", metadata=metadata)

    def start_tournament(self, tournament_id: str) -> Record:
        """Seed the active registrations, build the bracket and create the first matches."""
        current = self.get(tournament_id)
        if current["status"] not in ("registration", "registration-closed"):
            hint = " (open_registration() first)" if current["status"] == "draft" else ""
            raise InvalidArgumentError(f"cannot start tournament {tournament_id!r}: it is {current['status']!r}{hint}")
        fmt, config = REGISTRY[current["format"]], current["config"]
        ordered = self._seeded(tournament_id, config)
        low, high = config.get("min_participants") or 0, config.get("max_participants")
        if len(ordered) < max(low, 2 if fmt.needs_start else 0):
            raise InvalidArgumentError(
                f"tournament {tournament_id!r} needs at least {max(low, 2)} active participants to start, has {len(ordered)} "
                "(confirmed" + (" and checked-in" if config.get("check_in_required") else "") + ")"
            )
        if high is not None and len(ordered) > high:
            raise InvalidArgumentError(f"tournament {tournament_id!r} has {len(ordered)} participants, more than max_participants={high}")
        errors = fmt.validate(len(ordered), config)
        if errors:
            raise InvalidArgumentError(f"cannot start {fmt.name} tournament {tournament_id!r}: " + "; ".join(errors))
        bracket = current.get("bracket") if not fmt.needs_start else None
        if bracket is None:
            bracket = {**fmt.generate(ordered, config), "seeds": list(ordered), "format": fmt.name}
        else:  # a circuit: its events may already name participants
            known = list(bracket.get("seeds") or [])
            bracket = {**bracket, "seeds": known + [p for p in ordered if p not in known]}
        self._insert_matches(tournament_id, list(bracket["matches"].values()))
        self.tournaments.update(
            tournament_id,
            {"status": "in-progress", "participants": list(ordered), "bracket": bracket, "currentRound": 1, "startedAt": self._now()},
        )
        updated = self._sync(tournament_id)
        self.emit(
            "plg:tournament:started",
            {"tournamentId": tournament_id, "participantCount": len(ordered), "matchCount": len(bracket["matches"])},
        )
        return updated

    def complete(self, tournament_id: str) -> Record:
        """Close an in-progress tournament whose matches are all settled (ladders and circuits end only this way)."""
        current = self.get(tournament_id)
        if current["status"] != "in-progress":
            raise InvalidArgumentError(f"cannot complete tournament {tournament_id!r}: it is {current['status']!r}, not 'in-progress'")
        fmt = REGISTRY[current["format"]]
        bracket = current["bracket"]
        resolved, games = self._state(tournament_id, bracket)
        open_refs = [r for r in bracket["matches"] if resolved[r]["state"] not in SETTLED]
        if open_refs:
            shown = ", ".join(self._match_id(tournament_id, r) for r in open_refs[:5])
            raise InvalidArgumentError(f"tournament {tournament_id!r} still has {len(open_refs)} unplayed match(es): {shown}")
        if fmt.name not in ("ladder", "circuit") and not fmt.is_complete(bracket, resolved):
            raise InvalidArgumentError(f"tournament {tournament_id!r} is not over yet: more matches are due")
        return self._finish(tournament_id, current, fmt, bracket, resolved, games)

    def _finish(self, tournament_id, current, fmt, bracket, resolved, games) -> Record:
        config = current["config"]
        standings = fmt.standings(bracket, resolved, games, config)
        winner = fmt.winner(bracket, resolved, games, config)
        record = self.tournaments.update(
            tournament_id,
            {
                "status": "completed",
                "standings": standings,
                "completedAt": self._now(),
                "metadata": {**(current.get("metadata") or {}), "winner": winner},
            },
        )
        self.emit("plg:tournament:completed", {"tournamentId": tournament_id, "winner": winner, "standings": standings})
        return record

    # -- registrations ------------------------------------------------------------------------------

    def _registration_id(self, tournament_id: str, participant_id: str) -> str:
        return f"{tournament_id}--{participant_id}"

    def _registration_records(self, tournament_id: str) -> list[Record]:
        return self.registrations.list_partition("byTournament", {"tournamentId": tournament_id})

    def register(
        self, tournament_id: str, participant_id: str, *, seed: int | None = None, metadata: Mapping[str, Any] | None = None
    ) -> Record:
        """Register a participant while registration is open (``pending`` when the tournament's
        ``require_confirmation`` is on, else ``confirmed``)."""
        current = self.get(tournament_id)
        _check_participant(participant_id)
        if current["status"] != "registration":
            raise InvalidArgumentError(
                f"tournament {tournament_id!r} is {current['status']!r}: registration is not open (open_registration() first)"
            )
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 1):
            raise InvalidArgumentError(f"seed must be an integer >= 1 or None, got {seed!r}")
        config = current["config"]
        active = [r for r in self._registration_records(tournament_id) if r["status"] != "withdrawn"]
        high = config.get("max_participants")
        if high is not None and len(active) >= high and participant_id not in {r["participantId"] for r in active}:
            raise InvalidArgumentError(f"tournament {tournament_id!r} is full (max_participants={high})")
        now = self._now()
        status = "pending" if config.get("require_confirmation") else "confirmed"
        data = {
            "id": self._registration_id(tournament_id, participant_id),
            "tournamentId": tournament_id,
            "participantId": participant_id,
            "seed": seed,
            "status": status,
            "registeredAt": now,
            "confirmedAt": None if status == "pending" else now,
            "checkedInAt": None,
            "metadata": dict(metadata or {}),
        }
        existing = self.registrations.get_or_none(data["id"])
        if existing is not None and existing["status"] != "withdrawn":
            raise ConflictError(f"{participant_id!r} is already registered for tournament {tournament_id!r} ({existing['status']})")
        record = self.registrations.replace(data["id"], data) if existing is not None else self.registrations.insert(data)
        self.stats["registrations"] += 1
        self.emit("plg:tournament:registered", {"tournamentId": tournament_id, "participantId": participant_id})
        return record

    def _registration(self, tournament_id: str, participant_id: str) -> Record:
        self.get(tournament_id)
        _check_participant(participant_id)
        record = self.registrations.get_or_none(self._registration_id(tournament_id, participant_id))
        if record is None:
            raise NotFoundError(f"{participant_id!r} is not registered for tournament {tournament_id!r}")
        return record

    def confirm_registration(self, tournament_id: str, participant_id: str) -> Record:
        """``pending`` → ``confirmed``."""
        record = self._registration(tournament_id, participant_id)
        if record["status"] != "pending":
            raise InvalidArgumentError(f"registration of {participant_id!r} is {record['status']!r}, only a 'pending' one can be confirmed")
        return self.registrations.update(record["id"], {"status": "confirmed", "confirmedAt": self._now()})

    def check_in(self, tournament_id: str, participant_id: str) -> Record:
        """``confirmed`` → ``checked-in`` (required to play when the config says ``check_in_required``)."""
        record = self._registration(tournament_id, participant_id)
        if record["status"] != "confirmed":
            raise InvalidArgumentError(f"registration of {participant_id!r} is {record['status']!r}; confirm it before check-in")
        return self.registrations.update(record["id"], {"status": "checked-in", "checkedInAt": self._now()})

    def withdraw(self, tournament_id: str, participant_id: str, reason: str = "") -> Record:
        """Withdraw before the start (afterwards, report walkovers instead)."""
        current = self.get(tournament_id)
        record = self._registration(tournament_id, participant_id)
        if current["status"] in ("in-progress", "completed"):
            raise InvalidArgumentError(
                f"tournament {tournament_id!r} is {current['status']!r}: report walkovers for {participant_id!r} instead"
            )
        return self.registrations.update(
            record["id"], {"status": "withdrawn", "metadata": {**(record.get("metadata") or {}), "withdrawReason": reason}}
        )

    def get_participants(self, tournament_id: str) -> list[Record]:
        """Registrations of a tournament by seed (unseeded last, by registration time)."""
        self.get(tournament_id)
        return sorted(self._registration_records(tournament_id), key=_seed_key)

    def set_seed(self, tournament_id: str, participant_id: str, seed: int | None) -> Record:
        """Set a participant's seed (1 = best) before the start."""
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 1):
            raise InvalidArgumentError(f"seed must be an integer >= 1 or None, got {seed!r}")
        self._before_start(tournament_id, "set seeds")
        record = self._registration(tournament_id, participant_id)
        return self.registrations.update(record["id"], {"seed": seed})

    def shuffle_seeds(self, tournament_id: str, *, random_seed: int | None = None) -> list[Record]:
        """Give the active registrations seeds 1…n in random order (``random_seed`` makes it reproducible)."""
        self._before_start(tournament_id, "shuffle seeds")
        active = [r for r in self._registration_records(tournament_id) if r["status"] != "withdrawn"]
        order = seed_random(sorted(active, key=lambda r: r["participantId"]), random.Random(random_seed))
        return [self.registrations.update(r["id"], {"seed": i}) for i, r in enumerate(order, start=1)]

    def _before_start(self, tournament_id: str, what: str) -> Record:
        current = self.get(tournament_id)
        if current["status"] not in ("draft", "registration", "registration-closed"):
            raise InvalidArgumentError(f"cannot {what} of tournament {tournament_id!r}: it is {current['status']!r}")
        return current

    def _seeded(self, tournament_id: str, config: Mapping[str, Any]) -> list[str]:
        wanted = ("checked-in",) if config.get("check_in_required") else ("confirmed", "checked-in")
        active = sorted((r for r in self._registration_records(tournament_id) if r["status"] in wanted), key=_seed_key)
        ordered = [r["participantId"] for r in active]
        if config.get("seeding") == "random":
            ordered = seed_random(sorted(ordered), random.Random(config.get("random_seed")))
        return ordered

    # -- matches ------------------------------------------------------------------------------------

    def _match_id(self, tournament_id: str, ref: str) -> str:
        return f"{tournament_id}-{ref}"

    def _match_records(self, tournament_id: str) -> list[Record]:
        return self.matches.list_partition("byTournament", {"tournamentId": tournament_id})

    def _insert_matches(self, tournament_id: str, specs: Sequence[Mapping[str, Any]]) -> None:
        rows = []
        for spec in specs:
            nxt, loser_next = spec.get("next"), spec.get("loserNext")
            rows.append(
                {
                    "id": self._match_id(tournament_id, spec["ref"]),
                    "tournamentId": tournament_id,
                    "phase": spec["phase"],
                    "round": spec["round"],
                    "matchNumber": spec["number"],
                    "groupId": spec.get("group"),
                    "participant1Id": None,
                    "participant2Id": None,
                    "bestOf": spec.get("bestOf", 1),
                    "games": [],
                    "score1": 0,
                    "score2": 0,
                    "winnerId": None,
                    "loserId": None,
                    "status": "empty",
                    "nextMatchId": self._match_id(tournament_id, nxt[0]) if nxt else None,
                    "loserNextMatchId": self._match_id(tournament_id, loser_next[0]) if loser_next else None,
                    "scheduledAt": None,
                    "startedAt": None,
                    "completedAt": None,
                    "metadata": {"matchRef": spec["ref"]},
                }
            )
        for row in rows:
            try:
                self.matches.insert(row)
            except ConflictError:  # another process created this round already
                continue

    def get_matches(
        self, tournament_id: str, *, phase: str | None = None, round: int | None = None, status: str | None = None, group: str | None = None
    ) -> list[Record]:
        """The tournament's matches by round and number (1 LIST + 1 GET per match), optionally filtered."""
        self.get(tournament_id)
        out = [
            m
            for m in self._match_records(tournament_id)
            if (phase is None or m["phase"] == phase)
            and (round is None or _int(m["round"]) == round)
            and (status is None or m["status"] == status)
            and (group is None or m.get("groupId") == group)
        ]
        return sorted(out, key=_match_key)

    def get_match(self, match_id: str) -> Record:
        """One match (1 GET); ``NotFoundError`` naming the id."""
        if not isinstance(match_id, str) or not match_id:
            raise InvalidArgumentError(f"match_id must be a non-empty string, got {match_id!r}")
        record = self.matches.get_or_none(match_id)
        if record is None:
            raise NotFoundError(f"no match {match_id!r} in {self.matches_name}; get_matches(tournament_id) lists them")
        return record

    def schedule_match(self, match_id: str, scheduled_at: float | int) -> Record:
        """Set when a match is played (ms since the epoch, as s3db.js stores it)."""
        match = self.get_match(match_id)
        if not _is_number(scheduled_at):
            raise InvalidArgumentError(f"scheduled_at must be milliseconds since the epoch (a number), got {scheduled_at!r}")
        if match["status"] in (*MATCH_DONE, "bye", "skipped"):
            raise InvalidArgumentError(f"match {match_id!r} is {match['status']!r}: it cannot be scheduled")
        status = "scheduled" if match["status"] in ("pending", "scheduled") else match["status"]
        record = self.matches.update(match_id, {"scheduledAt": scheduled_at, "status": status})
        self.emit(
            "plg:tournament:match-scheduled", {"matchId": match_id, "tournamentId": match["tournamentId"], "scheduledAt": scheduled_at}
        )
        return record

    def start_match(self, match_id: str) -> Record:
        """``pending``/``scheduled`` → ``in-progress`` (both participants must be known)."""
        match = self.get_match(match_id)
        if not match.get("participant1Id") or not match.get("participant2Id"):
            raise InvalidArgumentError(f"match {match_id!r} cannot start: its participants are not known yet ({match['status']})")
        if match["status"] not in ("pending", "scheduled"):
            raise InvalidArgumentError(f"match {match_id!r} is {match['status']!r}: only a pending or scheduled match can start")
        record = self.matches.update(match_id, {"status": "in-progress", "startedAt": self._now()})
        self.emit("plg:tournament:match-started", {"matchId": match_id, "tournamentId": match["tournamentId"]})
        return record

    def _reportable(self, match_id: str) -> tuple[Record, Record]:
        match = self.get_match(match_id)
        tournament = self.get(match["tournamentId"])
        if tournament["status"] != "in-progress":
            raise InvalidArgumentError(
                f"tournament {tournament['id']!r} is {tournament['status']!r}: results are taken only while it is in progress"
            )
        if match["status"] not in MATCH_OPEN:
            why = (
                "already has a result"
                if match["status"] in MATCH_DONE
                else "has no opponents yet"
                if match["status"] in ("empty", "waiting")
                else "needs no result"
            )
            raise InvalidArgumentError(f"match {match_id!r} is {match['status']!r} and {why}")
        return match, tournament

    def report_result(
        self,
        match_id: str,
        result: Mapping[str, Any] | None = None,
        *,
        score1: float | None = None,
        score2: float | None = None,
        games: Sequence[Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Record:
        """Record a result (``score1``/``score2``, or a dict as in s3db.js): in a best-of-N the
        first to ⌈N/2⌉ wins; a tie is a draw where the format allows it. Winners and losers move
        on, due rounds are created and a finished tournament is completed."""
        if result is not None:
            if not isinstance(result, Mapping):
                raise InvalidArgumentError(f"result must be a dict like {{'score1': 2, 'score2': 1}}, got {type(result).__name__}")
            score1, score2 = result.get("score1", score1), result.get("score2", score2)
            games, metadata = result.get("games", games), result.get("metadata", metadata)
        for label, value in (("score1", score1), ("score2", score2)):
            if not _is_number(value) or value < 0:
                raise InvalidArgumentError(f"{label} must be a number >= 0, got {value!r}")
        if games is not None and (not isinstance(games, Sequence) or not all(isinstance(g, Mapping) for g in games)):
            raise InvalidArgumentError("games must be a list of dicts (one per game: {'score1': ..., 'score2': ...})")
        match, tournament = self._reportable(match_id)
        fmt = REGISTRY[tournament["format"]]
        p1, p2 = match["participant1Id"], match["participant2Id"]
        best_of = _int(match.get("bestOf")) or 1
        need = (best_of + 1) // 2
        winner = loser = None
        if best_of > 1:
            if score1 >= need and score2 >= need:
                raise InvalidArgumentError(f"a best-of-{best_of} ends when one side has {need} wins; {score1}-{score2} is not possible")
            if score1 >= need:
                winner, loser = p1, p2
            elif score2 >= need:
                winner, loser = p2, p1
            else:
                raise InvalidArgumentError(f"match {match_id!r} is a best-of-{best_of}: one side needs {need} wins, got {score1}-{score2}")
        elif score1 != score2:
            winner, loser = (p1, p2) if score1 > score2 else (p2, p1)
        if winner is None and not (fmt.draws and match["phase"] not in ("playoffs",)):
            raise InvalidArgumentError(
                f"{score1}-{score2} is a draw, which {fmt.name} match {match_id!r} cannot end in: report the decider's result or a walkover"
            )
        record = self.matches.update(
            match_id,
            {
                "score1": score1,
                "score2": score2,
                "games": list(games) if games else match.get("games") or [],
                "winnerId": winner,
                "loserId": loser,
                "status": "completed",
                "completedAt": self._now(),
                "metadata": {**(match.get("metadata") or {}), **(metadata or {})},
            },
        )
        self.stats["matchesPlayed"] += 1
        self.emit(
            "plg:tournament:match-completed",
            {
                "matchId": match_id,
                "tournamentId": tournament["id"],
                "winnerId": winner,
                "loserId": loser,
                "score1": score1,
                "score2": score2,
            },
        )
        self._sync(tournament["id"])
        return self.get_match(record["id"])

    def report_walkover(self, match_id: str, winner_id: str, reason: str = "") -> Record:
        """The winner goes through without playing (the loser did not show up)."""
        match, tournament = self._reportable(match_id)
        if winner_id not in (match["participant1Id"], match["participant2Id"]):
            raise InvalidArgumentError(
                f"winner_id {winner_id!r} is not in match {match_id!r} ({match['participant1Id']!r} vs {match['participant2Id']!r})"
            )
        loser = match["participant2Id"] if winner_id == match["participant1Id"] else match["participant1Id"]
        self.matches.update(
            match_id,
            {
                "winnerId": winner_id,
                "loserId": loser,
                "status": "walkover",
                "completedAt": self._now(),
                "metadata": {**(match.get("metadata") or {}), "walkoverReason": reason},
            },
        )
        self.stats["matchesPlayed"] += 1
        self.emit(
            "plg:tournament:match-walkover",
            {"matchId": match_id, "tournamentId": tournament["id"], "winnerId": winner_id, "loserId": loser},
        )
        self._sync(tournament["id"])
        return self.get_match(match_id)

    def report_game(
        self, match_id: str, game: Mapping[str, Any] | None = None, *, score1: float | None = None, score2: float | None = None
    ) -> Record:
        """Add one game of a best-of series; the series result is reported when someone has won it."""
        if game is not None:
            if not isinstance(game, Mapping):
                raise InvalidArgumentError(f"game must be a dict like {{'score1': 16, 'score2': 12}}, got {type(game).__name__}")
            score1, score2 = game.get("score1", score1), game.get("score2", score2)
        for label, value in (("score1", score1), ("score2", score2)):
            if not _is_number(value) or value < 0:
                raise InvalidArgumentError(f"{label} must be a number >= 0, got {value!r}")
        match, tournament = self._reportable(match_id)
        p1, p2 = match["participant1Id"], match["participant2Id"]
        games = list(match.get("games") or [])
        games.append(
            {
                "gameNumber": len(games) + 1,
                "score1": score1,
                "score2": score2,
                "winner": p1 if score1 > score2 else p2 if score2 > score1 else None,
                "reportedAt": self._now(),
                "metadata": dict((game or {}).get("metadata") or {}),
            }
        )
        wins1 = sum(1 for g in games if g["winner"] == p1)
        wins2 = sum(1 for g in games if g["winner"] == p2)
        need = ((_int(match.get("bestOf")) or 1) + 1) // 2
        if wins1 >= need or wins2 >= need:
            return self.report_result(match_id, score1=wins1, score2=wins2, games=games)
        self.emit("plg:tournament:game-reported", {"matchId": match_id, "tournamentId": tournament["id"], "gameNumber": len(games)})
        return self.matches.update(match_id, {"games": games, "score1": wins1, "score2": wins2, "status": "in-progress"})

    def get_upcoming_matches(self, tournament_id: str, limit: int = 10) -> list[Record]:
        """Scheduled matches due after now, soonest first."""
        now = self._now()
        rows = [
            m for m in self.get_matches(tournament_id, status="scheduled") if _is_number(m.get("scheduledAt")) and m["scheduledAt"] > now
        ]
        return sorted(rows, key=lambda m: m["scheduledAt"])[:limit]

    def get_live_matches(self, tournament_id: str) -> list[Record]:
        """Matches in progress."""
        return self.get_matches(tournament_id, status="in-progress")

    # -- derived state ----------------------------------------------------------------------------

    def _state(self, tournament_id: str, bracket: Mapping[str, Any], records: list[Record] | None = None):
        """``(resolved, games)``: who plays each match now, and the finished ones as standings input."""
        records = self._match_records(tournament_id) if records is None else records
        by_ref = {(r.get("metadata") or {}).get("matchRef"): r for r in records}
        results = {ref: {"winner": r.get("winnerId"), "loser": r.get("loserId")} for ref, r in by_ref.items() if r["status"] in MATCH_DONE}
        resolved = resolve(bracket.get("matches") or {}, results)
        games = {}
        for ref, state in resolved.items():
            if state["state"] == "done" and ref in by_ref:
                r = by_ref[ref]
                games[ref] = {
                    "p1": state["p1"], "p2": state["p2"], "score1": r.get("score1"), "score2": r.get("score2"),
                    "winner": r.get("winnerId"), "status": r["status"],
                }  # fmt: skip
            elif state["state"] == "bye":
                games[ref] = {"p1": state["winner"], "p2": None, "status": "bye", "winner": state["winner"]}
        return resolved, games

    def _sync(self, tournament_id: str) -> Record:
        """Bring match records in line with the bracket (advancement, byes), add due rounds,
        store standings, and complete the tournament when it is over."""
        tournament = self.get(tournament_id)
        fmt, config = REGISTRY[tournament["format"]], tournament["config"]
        bracket = dict(tournament["bracket"] or {"matches": {}})
        bracket["matches"] = dict(bracket.get("matches") or {})
        records = self._match_records(tournament_id)
        for _ in range(64):  # each pass may add one round; a bracket has far fewer
            resolved, games = self._state(tournament_id, bracket, records)
            self._apply(tournament_id, records, resolved)
            new = fmt.advance(bracket, resolved, games, config)
            if not new:
                break
            self._insert_matches(tournament_id, new)
            records = self._match_records(tournament_id)
        resolved, games = self._state(tournament_id, bracket, records)
        open_specs = [bracket["matches"][r] for r in bracket["matches"] if resolved[r]["state"] not in SETTLED]
        first = min(open_specs, key=lambda s: (s["round"], s["number"])) if open_specs else None
        update = {
            "bracket": bracket,
            "standings": fmt.standings(bracket, resolved, games, config),
            "currentPhase": first["phase"] if first else tournament.get("currentPhase"),
            "currentRound": first["round"] if first else _int(tournament.get("currentRound")),
        }
        record = self.tournaments.update(tournament_id, update)
        self.emit("plg:tournament:bracket-updated", {"tournamentId": tournament_id})
        if fmt.is_complete(bracket, resolved):
            return self._finish(tournament_id, record, fmt, bracket, resolved, games)
        return record

    def _apply(self, tournament_id: str, records: list[Record], resolved: Mapping[str, Mapping[str, Any]]) -> None:
        by_ref = {(r.get("metadata") or {}).get("matchRef"): r for r in records}
        for ref, state in resolved.items():
            record = by_ref.get(ref)
            if record is None or record["status"] in MATCH_DONE:
                continue
            p1 = None if state["p1"] is BYE else state["p1"]
            p2 = None if state["p2"] is BYE else state["p2"]
            kind = state["state"]
            if kind == "ready":
                status = record["status"] if record["status"] in MATCH_OPEN else "pending"
            else:
                status = {"empty": "empty", "waiting": "waiting", "bye": "bye", "skipped": "skipped"}[kind]
            winner = state["winner"] if kind == "bye" else None
            want = {"participant1Id": p1, "participant2Id": p2, "status": status, "winnerId": winner}
            if any(record.get(k) != v for k, v in want.items()):
                self.matches.update(record["id"], want)
                record.update(want)

    # -- standings and brackets ---------------------------------------------------------------------

    def get_standings(self, tournament_id: str, *, as_frame: bool = False) -> Any:
        """Current standings (a league table, knockout placements, ladder or circuit ranking);
        ``as_frame=True`` gives a pandas DataFrame. Empty before the start."""
        tournament = self.get(tournament_id)
        fmt, bracket = REGISTRY[tournament["format"]], tournament.get("bracket")
        rows: list[dict[str, Any]] = []
        if bracket and (tournament["status"] in ("in-progress", "completed") or not fmt.needs_start):
            resolved, games = self._state(tournament_id, bracket)
            rows = fmt.standings(bracket, resolved, games, tournament["config"])
        if as_frame:
            import pandas as pd

            return pd.DataFrame(rows)
        return rows

    def get_bracket(self, tournament_id: str) -> dict[str, Any] | None:
        """The bracket as stored plus, per match, who plays, the result and its state
        (``matches``: a list by phase, round, number). ``None`` before the start."""
        tournament = self.get(tournament_id)
        bracket = tournament.get("bracket")
        if not bracket:
            return None
        records = self._match_records(tournament_id)
        resolved, _ = self._state(tournament_id, bracket, records)
        by_ref = {(r.get("metadata") or {}).get("matchRef"): r for r in records}
        rows = []
        for ref, spec in bracket.get("matches", {}).items():
            record, state = by_ref.get(ref, {}), resolved[ref]
            rows.append(
                {
                    "ref": ref,
                    "matchId": record.get("id"),
                    "phase": spec["phase"],
                    "round": spec["round"],
                    "matchNumber": spec["number"],
                    "groupId": spec.get("group"),
                    "participant1Id": None if state["p1"] is BYE else state["p1"],
                    "participant2Id": None if state["p2"] is BYE else state["p2"],
                    "bye1": state["p1"] is BYE,
                    "bye2": state["p2"] is BYE,
                    "score1": record.get("score1"),
                    "score2": record.get("score2"),
                    "winnerId": None if state["winner"] is BYE else state["winner"],
                    "status": record.get("status", state["state"]),
                    "next": (spec.get("next") or [None])[0],
                    "loserNext": (spec.get("loserNext") or [None])[0],
                }  # fmt: skip
            )
        rows.sort(key=lambda r: (_phase_order(r["phase"]), r["groupId"] or "", r["round"], r["matchNumber"]))
        extra = {k: v for k, v in bracket.items() if k != "matches"}
        return {"tournamentId": tournament_id, "format": tournament["format"], "status": tournament["status"], **extra, "matches": rows}

    # -- ladder ----------------------------------------------------------------------------------

    def _of_format(self, tournament_id: str, name: str, what: str) -> Record:
        tournament = self.get(tournament_id)
        if tournament["format"] != name:
            raise InvalidArgumentError(f"{what} is only for {name} tournaments; {tournament_id!r} is {tournament['format']}")
        return tournament

    def challenge(self, tournament_id: str, challenger_id: str, defender_id: str) -> Record:
        """A ladder challenge: a match between a player and one up to ``challenge_range`` rungs above."""
        tournament = self._of_format(tournament_id, "ladder", "challenge()")
        if tournament["status"] != "in-progress":
            raise InvalidArgumentError(f"ladder {tournament_id!r} is {tournament['status']!r}: start_tournament() it first")
        bracket = dict(tournament["bracket"])
        bracket["matches"] = dict(bracket["matches"])
        resolved, games = self._state(tournament_id, bracket)
        try:
            spec = REGISTRY["ladder"].challenge_spec(bracket, resolved, games, tournament["config"], challenger_id, defender_id)
        except FormatError as exc:
            raise InvalidArgumentError(str(exc)) from None
        self._insert_matches(tournament_id, [spec])
        self.tournaments.update(tournament_id, {"bracket": bracket})
        self._sync(tournament_id)
        return self.get_match(self._match_id(tournament_id, spec["ref"]))

    def get_ladder_ranking(self, tournament_id: str) -> list[dict[str, Any]]:
        """Ladder rungs with Elo ratings (initial 1000, K = 32 unless configured)."""
        self._of_format(tournament_id, "ladder", "get_ladder_ranking()")
        return self.get_standings(tournament_id)

    # -- circuit ---------------------------------------------------------------------------------

    def add_circuit_event(self, circuit_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Add an event's placements to a circuit: ``{"id", "name", "results": [{"participantId",
        "placement"}] or {participant: placement}, "multiplier": 1}``. Returns the circuit's bracket."""
        circuit = self._of_format(circuit_id, "circuit", "add_circuit_event()")
        if circuit["status"] in ("completed", "cancelled"):
            raise InvalidArgumentError(f"circuit {circuit_id!r} is {circuit['status']!r}: no more events")
        clean = _circuit_event(event)
        bracket = dict(circuit.get("bracket") or {"matches": {}, "events": [], "seeds": [], "format": "circuit"})
        events = list(bracket.get("events") or [])
        if any(e["id"] == clean["id"] for e in events):
            raise ConflictError(f"circuit {circuit_id!r} already has an event {clean['id']!r}")
        bracket["events"] = [*events, clean]
        seen = list(bracket.get("seeds") or [])
        bracket["seeds"] = seen + [r["participantId"] for r in clean["results"] if r["participantId"] not in seen]
        standings = REGISTRY["circuit"].standings(bracket, {}, {}, circuit["config"])
        self.tournaments.update(circuit_id, {"bracket": bracket, "standings": standings, "participants": bracket["seeds"]})
        self.emit("plg:tournament:circuit-event-added", {"circuitId": circuit_id, "eventId": clean["id"]})
        return bracket

    def get_circuit_standings(self, circuit_id: str) -> list[dict[str, Any]]:
        """Circuit points per participant over every event."""
        self._of_format(circuit_id, "circuit", "get_circuit_standings()")
        return self.get_standings(circuit_id)


# -- helpers ------------------------------------------------------------------------------------------


def _format(name: Any) -> Format:
    if name not in REGISTRY:
        close = difflib.get_close_matches(str(name), FORMATS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InvalidArgumentError(f"format must be one of {', '.join(FORMATS)}, got {name!r}{hint}")
    return REGISTRY[name]


def _config(fmt: Format, config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The format's defaults with ``config`` over them; unknown or ill-typed options are refused."""
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgumentError(f"config must be a dict of {fmt.name} options, got {type(config).__name__}")
    defaults = fmt.defaults()
    given = dict(config or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, defaults, n=1)
            parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InvalidArgumentError(f"unknown {fmt.name} config option(s) {', '.join(parts)}; valid: {', '.join(sorted(defaults))}")
    full = {**defaults, **given}
    if full["seeding"] not in SEEDINGS:
        raise InvalidArgumentError(f"config seeding must be one of {', '.join(SEEDINGS)}, got {full['seeding']!r}")
    for key in ("min_participants", "max_participants"):
        value = full[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise InvalidArgumentError(f"config {key} must be an integer >= 0 or None, got {value!r}")
    if "points_table" in full and isinstance(full["points_table"], Mapping):
        full["points_table"] = {str(k): v for k, v in full["points_table"].items()}  # JSON keys are text
    errors = fmt.validate(1 << 20, full)  # the checks that do not depend on how many take part
    if errors:
        raise InvalidArgumentError(f"invalid {fmt.name} config: " + "; ".join(errors))
    return full


def _check_segment(label: str, value: str) -> None:
    bad = sorted(set(value) & _FORBIDDEN)
    if bad:
        raise InvalidArgumentError(f"{label} {value!r} contains {' '.join(bad)}; ids may not contain / \\ = % (they are S3 key segments)")


def _check_participant(participant_id: Any) -> None:
    if not isinstance(participant_id, str) or not participant_id or len(participant_id) > 200:
        raise InvalidArgumentError(f"participant_id must be a non-empty string of at most 200 characters, got {participant_id!r}")
    _check_segment("participant_id", participant_id)


def _seed_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    seed = record.get("seed")
    return (seed is None, seed if _is_number(seed) else 0, record.get("registeredAt") or 0, record["participantId"])


def _match_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    return (_phase_order(record["phase"]), record.get("groupId") or "", _int(record["round"]), _int(record["matchNumber"]))


_PHASES = ("main", "groups", "league", "swiss", "ladder", "winners", "losers", "grand-final", "playoffs")


def _phase_order(phase: str) -> int:
    return _PHASES.index(phase) if phase in _PHASES else len(_PHASES)


def _circuit_event(event: Any) -> dict[str, Any]:
    if not isinstance(event, Mapping):
        raise InvalidArgumentError(f"a circuit event must be a dict with id, name and results, got {type(event).__name__}")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidArgumentError(f"a circuit event needs an 'id' (a non-empty string), got {event_id!r}")
    results = event.get("results")
    if isinstance(results, Mapping):
        results = [{"participantId": k, "placement": v} for k, v in results.items()]
    if not isinstance(results, Sequence) or isinstance(results, str) or not results:
        raise InvalidArgumentError(f"circuit event {event_id!r} needs 'results': [{{'participantId': ..., 'placement': 1}}, ...]")
    clean, seen = [], set()
    for row in results:
        pid, place = (row.get("participantId"), row.get("placement")) if isinstance(row, Mapping) else (None, None)
        _check_participant(pid)
        if isinstance(place, bool) or not isinstance(place, int) or place < 1:
            raise InvalidArgumentError(f"circuit event {event_id!r}: placement of {pid!r} must be an integer >= 1, got {place!r}")
        if pid in seen:
            raise InvalidArgumentError(f"circuit event {event_id!r} lists {pid!r} twice")
        seen.add(pid)
        clean.append({"participantId": pid, "placement": place})
    multiplier = event.get("multiplier", 1)
    if not _is_number(multiplier) or multiplier < 0:
        raise InvalidArgumentError(f"circuit event {event_id!r}: multiplier must be a number >= 0, got {multiplier!r}")
    return {
        "id": event_id,
        "name": str(event.get("name") or event_id),
        "results": clean,
        "multiplier": multiplier,
        "date": event.get("date"),
    }


__all__ = ["TournamentPlugin", "FORMATS", "SEEDINGS", "STATUSES"]
