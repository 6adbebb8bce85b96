"""A small Python client over the PromptPulse HTTP API: search calls and scores with the API's filters, page
through large results, get rows (dicts) or a pandas DataFrame (when pandas is installed), submit feedback scores,
run a read-only SQL query. Standard library only (urllib).

    from promptpulse.client import Client

    pp = Client("http://127.0.0.1:8321", token=None)
    rows = pp.calls(prompt_id="support", start="-24h", limit=5000)       # a list of dicts, all pages
    df = pp.scores_df(rule="reply-pii", start="-7d")                     # pandas.DataFrame
    pp.post_scores({"trace_id": t, "span_id": s, "name": "thumbs_up", "value": 1})
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

PAGE = 1000


class APIError(RuntimeError):
    """The API answered an error (``status`` and the API's message)."""

    def __init__(self, status: int, message: str, path: str) -> None:
        super().__init__(f"{status} {path}: {message}")
        self.status = status
        self.message = message


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8321", *, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    # --- transport -------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body, default=str).encode()
        req = urllib.request.Request(url, data=data, method=method, headers={"Accept": "application/json"})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                msg = json.loads(raw).get("error", raw.decode(errors="replace"))
            except ValueError:
                msg = raw.decode(errors="replace")[:500]
            raise APIError(e.code, msg, path) from None

    def _pages(self, path: str, filters: Mapping[str, Any], limit: int | None, page_size: int) -> Iterator[dict]:
        filters = dict(filters)
        sent, cursor = 0, filters.pop("cursor", None)  # a cursor given: resume from there
        while limit is None or sent < limit:
            n = page_size if limit is None else min(page_size, limit - sent)
            doc = self._request("GET", path, {**filters, "limit": n, "cursor": cursor})
            yield from doc["rows"]
            sent += len(doc["rows"])
            cursor = doc.get("next_cursor")
            if cursor is None:
                return

    # --- searches --------------------------------------------------------------------------------------------
    def iter_calls(self, *, limit: int | None = None, page_size: int = PAGE, **filters: Any) -> Iterator[dict]:
        """LLM calls in time order, fetched a page at a time. Filters: start, end (ISO or relative: -24h, today),
        prompt_id, version, service, environment, model, provider, feature, operation, tag, user_id, status.
        A filter may be a list (any of its values)."""
        return self._pages("/api/evaluation/calls", filters, limit, page_size)

    def calls(self, *, limit: int | None = None, page_size: int = PAGE, **filters: Any) -> list[dict]:
        return list(self.iter_calls(limit=limit, page_size=page_size, **filters))

    def iter_scores(self, *, limit: int | None = None, page_size: int = PAGE, **filters: Any) -> Iterator[dict]:
        """Score rows (rule results and feedback) with their call's dimensions. Filters: name, rule, metric,
        source, guardrail ("any" = every guardrail result), trace_id, start, end, and the call filters."""
        return self._pages("/api/evaluation/scores", filters, limit, page_size)

    def scores(self, *, limit: int | None = None, page_size: int = PAGE, **filters: Any) -> list[dict]:
        return list(self.iter_scores(limit=limit, page_size=page_size, **filters))

    def calls_df(self, **kwargs: Any) -> Any:
        """:meth:`calls` as a pandas DataFrame (pandas is optional: ImportError names it when missing)."""
        return _frame(self.calls(**kwargs), ("timestamp",))

    def scores_df(self, **kwargs: Any) -> Any:
        return _frame(self.scores(**kwargs), ("timestamp",))

    def score_summary(self, **params: Any) -> dict[str, Any]:
        """GET /api/scores: per score name, count, average, distribution, by version."""
        return self._request("GET", "/api/scores", params)

    # --- writes and SQL --------------------------------------------------------------------------------------
    def post_scores(self, scores: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
        """Record feedback (one score or up to 1000): trace_id, span_id, name, value, label, comment, source,
        timestamp (docs/API.md). Returns how many were inserted."""
        body = dict(scores) if isinstance(scores, Mapping) else [dict(s) for s in scores]
        return int(self._request("POST", "/api/scores", body=body)["inserted"])

    def query(self, sql: str) -> list[dict]:
        """One read-only SQL statement through POST /api/query, as dicts."""
        doc = self._request("POST", "/api/query", body={"sql": sql})
        return [dict(zip(doc["columns"], r, strict=False)) for r in doc["rows"]]

    def rules(self) -> dict[str, Any]:
        return self._request("GET", "/api/evaluation/rules")


def _param(v: Any) -> str:
    if isinstance(v, (list, tuple, set)):
        return ",".join(str(x) for x in v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _frame(rows: list[dict], time_columns: Sequence[str]) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("a DataFrame needs pandas (pip install pandas); calls() / scores() give plain rows")
    df = pd.DataFrame(rows)
    for c in time_columns:
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], utc=True)
    return df
