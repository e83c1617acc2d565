"""Day runs: which days a run computes, one day's steps, the undo and replay of late data, and
the run cache (aggregate ledger and state mirror) that makes a day cheap."""
