"""What a run changed: the net change of the state between before and after it.

A day run's own figures (scores changed, band changes, stage moves, …) are changes relative
to the day before. A replay undoes days and runs them again, so its days' figures count work,
not change: the same data replayed changes nothing. For a plan that undoes or runs several
days, the current state (scores, stages, marketing statuses, open demotions, renewals) is
read before and after and compared; a single new day's figures are its net change already.
"""

from dataclasses import asdict, dataclass, field

import pyarrow as pa

from leadflow.lake import duckdb_connection
from leadflow.store.db import read_arrow
from leadflow.workspace import Workspace

TOP_MOVERS = 10
SNAPSHOT = {
    "scores": (
        "SELECT s.contact_id, c.email, s.score, s.value, s.band FROM contact_score s "
        "JOIN contact c ON c.id = s.contact_id",
        pa.schema(
            [
                ("contact_id", pa.int64()),
                ("email", pa.string()),
                ("score", pa.string()),
                ("value", pa.float64()),
                ("band", pa.string()),
            ]
        ),
    ),
    "stages": (
        "SELECT contact_id, stage FROM contact_stage",
        pa.schema([("contact_id", pa.int64()), ("stage", pa.string())]),
    ),
    "marketing": (
        "SELECT contact_id, status, CAST(suppressed AS INTEGER) FROM contact_marketing",
        pa.schema(
            [("contact_id", pa.int64()), ("status", pa.string()), ("suppressed", pa.int64())]
        ),
    ),
    "demotions": (
        "SELECT contact_id, state FROM demotion WHERE state IN ('queued', 'scheduled')",
        pa.schema([("contact_id", pa.int64()), ("state", pa.string())]),
    ),
    "renewals": (
        "SELECT CAST(renewal_date AS TEXT) FROM contract_renewal",
        pa.schema([("renewal_date", pa.string())]),
    ),
}


@dataclass(frozen=True)
class StateChanges:
    scores: int = 0  # (contact, score) whose value or band is not what it was
    bands: int = 0  # of those, band changes
    stages: int = 0  # contacts whose stage changed
    new_statuses: int = 0  # contacts given their first marketing status
    promoted: int = 0  # non-marketing -> marketing
    demoted: int = 0  # marketing -> non-marketing (applied demotions)
    suppressed: int = 0  # contacts newly suppressed
    demotions_opened: int = 0  # demotions now queued or scheduled that were not so before
    demotions_closed: int = 0  # open demotions that are not open any more (applied, cancelled)
    renewals: int = 0  # renewals gone through
    movers: list[tuple[str, str, float | None, float]] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not any(value for name, value in asdict(self).items() if name != "movers")

    def describe(self) -> str:
        if self.nothing:
            return "nothing changed"
        parts = [
            (self.scores, "score(s) changed"),
            (self.bands, "band change(s)"),
            (self.stages, "stage move(s)"),
            (self.new_statuses, "first marketing status(es)"),
            (self.promoted, "promoted"),
            (self.demoted, "demoted"),
            (self.suppressed, "suppressed"),
            (self.demotions_opened, "demotion(s) queued or scheduled"),
            (self.demotions_closed, "demotion(s) closed"),
            (self.renewals, "renewal(s)"),
        ]
        return ", ".join(f"{count} {what}" for count, what in parts if count)


def snapshot(workspace: Workspace) -> dict[str, pa.Table]:
    """The current state, to compare a run's end with."""
    return {
        name: read_arrow(workspace.engine, sql, schema) for name, (sql, schema) in SNAPSHOT.items()
    }


def net_changes(before: dict[str, pa.Table], after: dict[str, pa.Table]) -> StateChanges:
    """Compare two snapshots, set-based."""
    with duckdb_connection() as connection:
        for name in SNAPSHOT:
            connection.register(f"b_{name}", before[name])
            connection.register(f"a_{name}", after[name])
        [(scores, bands)] = connection.execute(
            """SELECT count(*), count(*) FILTER (WHERE b.band IS DISTINCT FROM a.band)
               FROM a_scores a FULL OUTER JOIN b_scores b USING (contact_id, score)
               WHERE a.value IS DISTINCT FROM b.value OR a.band IS DISTINCT FROM b.band"""
        ).fetchall()
        [(stages,)] = connection.execute(
            """SELECT count(*) FROM a_stages a FULL OUTER JOIN b_stages b USING (contact_id)
               WHERE a.stage IS DISTINCT FROM b.stage"""
        ).fetchall()
        [(new, promoted, demoted, suppressed)] = connection.execute(
            """SELECT count(*) FILTER (WHERE b.status IS NULL AND a.status IS NOT NULL),
                      count(*) FILTER (WHERE b.status = 'non_marketing'
                                         AND a.status = 'marketing'),
                      count(*) FILTER (WHERE b.status = 'marketing'
                                         AND a.status = 'non_marketing'),
                      count(*) FILTER (WHERE COALESCE(a.suppressed, 0) = 1
                                         AND COALESCE(b.suppressed, 0) = 0)
               FROM a_marketing a FULL OUTER JOIN b_marketing b USING (contact_id)"""
        ).fetchall()
        [(opened, closed)] = connection.execute(
            """SELECT count(*) FILTER (WHERE a.state IS NOT NULL
                                         AND a.state IS DISTINCT FROM b.state),
                      count(*) FILTER (WHERE a.state IS NULL)
               FROM a_demotions a FULL OUTER JOIN b_demotions b USING (contact_id)"""
        ).fetchall()
        [(renewals,)] = connection.execute(
            "SELECT count(*) FROM a_renewals ANTI JOIN b_renewals USING (renewal_date)"
        ).fetchall()
        movers = connection.execute(
            f"""SELECT a.email, a.score, b.value, a.value
                FROM a_scores a JOIN b_scores b USING (contact_id, score)
                WHERE a.value <> b.value
                ORDER BY abs(a.value - b.value) DESC, a.email LIMIT {TOP_MOVERS}"""
        ).fetchall()
    return StateChanges(
        scores,
        bands,
        stages,
        new,
        promoted,
        demoted,
        suppressed,
        opened,
        closed,
        renewals,
        [tuple(row) for row in movers],
    )


def day_changes(day: dict) -> StateChanges:
    """A single new day's own figures (a day run's summary, as a dict): its net change."""
    scoring, lifecycle, marketing = day["scoring"], day["lifecycle"], day["marketing"]
    demotions = marketing["demotions"]
    return StateChanges(
        scoring["scores_changed"],
        scoring["band_changes"],
        lifecycle["moves"],
        marketing["new_contacts"],
        marketing["promoted"],
        demotions.get("applied", 0),
        marketing["suppressed"],
        demotions.get("queued", 0) + demotions.get("scheduled", 0),
        demotions.get("applied", 0) + demotions.get("cancelled", 0),
        1 if marketing["renewal"] else 0,
        [tuple(row) for row in scoring["movers"]],
    )
