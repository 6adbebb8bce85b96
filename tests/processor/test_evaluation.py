"""Processor-side evaluation on the real chDB engine: rules, filters and sampling on known calls with exact counts,
no double scoring across passes, evaluation errors apart from scores, guardrail counts, conversations after
inactivity, and `promptpulse eval`."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import pytest

from promptpulse.evaluation.rules import load_evaluation
from promptpulse.processor.cli import main
from promptpulse.processor.evaluation import ProcessorEvaluator

pytest.importorskip("chdb")

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC).replace(microsecond=0)
T0 = NOW - dt.timedelta(minutes=50)
EMAIL = "Write to jo@example.com"
OK, TO_EMAIL, BAD = '{"ok": 1}', '{"to": "jo@example.com"}', "{not json"


def _msgs(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _span(i: int, *, at: dt.datetime, output: str | None, prompt: str = "support", model: str = "gpt-4o",
          conversation: str = "", tags: tuple[str, ...] = (), feature: str = "") -> list:
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
             "gen_ai.prompt.name": prompt, "gen_ai.usage.input_tokens": "10", "gen_ai.usage.output_tokens": "5"}
    if output is not None:
        attrs["gen_ai.input.messages"] = _msgs("user", f"question {i}")
        attrs["gen_ai.output.messages"] = _msgs("assistant", output)
    if conversation:
        attrs["gen_ai.conversation.id"] = conversation
    if tags:
        attrs["promptpulse.tags"] = json.dumps(list(tags))
    if feature:
        attrs["promptpulse.feature"] = feature
    ns = int(at.timestamp() * 1e9)
    return [ns, f"{i:032x}", f"{i:016x}", "", "", f"chat {model}", "Client", "svc",
            {"service.name": "svc", "deployment.environment.name": "production"}, "scope", "1", attrs, 200_000_000,
            "Ok", "", [], [], [], [], [], [], []]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    from promptpulse.processor.store.embedded import EmbeddedStore

    s = EmbeddedStore(str(tmp_path_factory.mktemp("eval") / "data"))
    s.apply_schema()
    rows = []
    # 1..40: support calls with content; every 5th answer is not JSON, the other 4th ones hold an e-mail address.
    for i in range(1, 41):
        out = (TO_EMAIL if i % 4 == 0 else OK) if i % 5 else BAD
        rows.append(_span(i, at=T0 + dt.timedelta(seconds=i), output=out, tags=("beta",) if i <= 10 else ()))
    # 41..50: content not captured. 51..55: another prompt. 56: a judge call (evaluation feature).
    rows += [_span(i, at=T0 + dt.timedelta(seconds=i), output=None) for i in range(41, 51)]
    rows += [_span(i, at=T0 + dt.timedelta(seconds=i), output="Xyzzy plugh", prompt="billing") for i in range(51, 56)]
    rows.append(_span(56, at=T0 + dt.timedelta(seconds=56), output=EMAIL, feature="promptpulse.evaluation"))
    # Conversations: c1 idle since T0+100 s, c2 still active (its last call 1 minute ago).
    rows += [_span(100 + k, at=T0 + dt.timedelta(seconds=90 + 5 * k), output=f'{{"turn": {k}}}', conversation="c1")
             for k in range(3)]
    rows += [_span(110 + k, at=NOW - dt.timedelta(minutes=3 - k), output=EMAIL, conversation="c2") for k in range(2)]
    s.insert_otel_traces(rows, dedup_token=uuid.uuid4().hex)
    yield s
    s.close()


CONFIG = {"rules": [
    {"name": "reply-pii", "metric": "pii", "guardrail": True, "filters": {"prompt_name": "support"}},
    {"name": "reply-json", "metric": "valid_json", "guardrail": True, "sampling": 0.5,
     "filters": {"prompt_name": "support"}},
    {"name": "beta-length", "metric": "length", "params": {"max": 9}, "filters": {"tags": "beta"}},
    {"name": "conv-pii", "metric": "pii", "target": "conversation", "idle": "10m"},
    {"name": "app-only", "metric": "refusal", "runs": "app"},
]}


def _counts(store, sql: str) -> list:
    return [tuple(r) for r in store.query(sql).rows]


def test_pass_scores_with_exact_counts_and_never_twice(store) -> None:
    config = load_evaluation(CONFIG)
    ev = ProcessorEvaluator(store, config, clock=lambda: NOW)
    assert [r.name for r in ev.rules] == ["reply-pii", "reply-json", "beta-length", "conv-pii"]
    report = ev.run_pass(T0, T0 + dt.timedelta(minutes=5))
    got = {k: v.as_dict() for k, v in report.rules.items()}
    # reply-pii: calls 1..50 and c1's 3 calls are 'support' in the window (not billing, not the judge call; c2 is
    # later) -> 53 matched, 10 of them without content.
    assert got["reply-pii"] == {"matched": 53, "sampled": 53, "no_content": 10, "already": 0, "scored": 43,
                                "errors": 0, "judge_cost_usd": 0.0}
    # reply-json samples half of the traces: 26 of the 53, 21 with content, 4 of them not JSON (every 5th call).
    assert got["reply-json"] == {"matched": 53, "sampled": 26, "no_content": 5, "already": 0, "scored": 21,
                                 "errors": 0, "judge_cost_usd": 0.0}
    assert got["beta-length"] == {"matched": 10, "sampled": 10, "no_content": 0, "already": 0, "scored": 10,
                                  "errors": 0, "judge_cost_usd": 0.0}
    # c1 went idle (last call T0+100 s, idle 10 min) at T0+11:40, after this window.
    assert got["conv-pii"]["matched"] == 0
    assert _counts(store, "SELECT rule, count(), sum(value), countIf(source = 'evaluation') FROM llm_scores "
                          "GROUP BY rule ORDER BY rule") == [("beta-length", 10, 8.0, 10), ("reply-json", 21, 17.0, 21),
                                                           ("reply-pii", 43, 35.0, 43)]
    # beta-length (max 9 chars): of calls 1..10, 4 and 8 (the e-mail answers) are longer. reply-pii:
    # the e-mail answers, every 4th call of 1..40 but not 20 and 40 (those are the not-JSON ones): 8 of 43.
    again = ev.run_pass(T0, T0 + dt.timedelta(minutes=5))
    assert again.rules["reply-pii"].already == 43 and again.rules["reply-pii"].scored == 0
    assert store.query("SELECT count() FROM llm_scores").scalar() == 74
    # The score rollup attributes them to their calls like any score.
    assert _counts(store, "SELECT name, sum(scores), sum(positives), sum(unattributed) FROM llm_scores_1m "
                          "WHERE name = 'reply-pii' GROUP BY name") == [("reply-pii", 43, 35, 0)]


def test_guardrail_failures_view(store) -> None:
    rows = _counts(store, "SELECT guardrail, rule, prompt_name, model, sum(checks), sum(failures) "
                          "FROM guardrail_failures GROUP BY guardrail, rule, prompt_name, model ORDER BY guardrail")
    assert rows == [("format", "reply-json", "support", "gpt-4o", 21, 4),
                    ("pii", "reply-pii", "support", "gpt-4o", 43, 8)]


def test_conversation_scored_once_idle(store) -> None:
    config = load_evaluation(CONFIG)
    ev = ProcessorEvaluator(store, config, rules=[r for r in config.rules if r.name == "conv-pii"])
    report = ev.run_pass(T0 + dt.timedelta(minutes=5), NOW)
    assert report.rules["conv-pii"].as_dict() == {"matched": 1, "sampled": 1, "no_content": 0, "already": 0,
                                                  "scored": 1, "errors": 0, "judge_cost_usd": 0.0}
    # Attached to c1's last call (102); c2 is not idle yet.
    assert _counts(store, "SELECT trace_id, span_id, value, comment FROM llm_scores WHERE rule = 'conv-pii'") == [
        (f"{102:032x}", f"{102:016x}", 1.0, "no PII found")]
    later = ProcessorEvaluator(store, config, rules=ev.rules).run_pass(NOW, NOW + dt.timedelta(minutes=30))
    assert later.rules["conv-pii"].scored == 1  # c2, idle 10 minutes after its last call
    assert _counts(store, "SELECT span_id, value, comment FROM llm_scores WHERE rule = 'conv-pii' AND value = 0") == [
        (f"{111:016x}", 0.0, "found 2 email")]


def test_errors_are_kept_apart(store) -> None:
    config = load_evaluation({"rules": [{"name": "lang", "metric": "language", "params": {"expected": "en"},
                                         "filters": {"prompt_name": "billing"}}]})
    report = ProcessorEvaluator(store, config).run_pass(T0, T0 + dt.timedelta(minutes=5))
    # "Xyzzy plugh": no known function words -> no score, an evaluation error.
    assert report.rules["lang"].errors == 5 and report.rules["lang"].scored == 0
    assert store.query("SELECT count() FROM llm_scores WHERE rule = 'lang'").scalar() == 0
    assert _counts(store, "SELECT count(), any(metric), any(error) FROM llm_eval_errors WHERE rule = 'lang'") == [
        (5, "language", "language: the text is too short or has too few known words to tell")]


def test_cli_list_test_run(store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "pp.toml"
    cfg.write_text('[evaluation]\n[[evaluation.rules]]\nname = "card"\nmetric = "pii"\nguardrail = true\n'
                   'params = { types = ["card"] }\n\n[[evaluation.rules]]\nname = "json"\nmetric = "valid_json"\n'
                   'sampling = 0.5\nruns = "app"\nfilters = { prompt_name = ["support", "billing"] }\n')
    assert main(["eval", "list", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "METRIC", "RUNS", "TARGET", "SAMPLING", "GUARDRAIL", "JUDGE", "FILTERS"]
    assert out[2].split() == ["card", "pii", "processor", "call", "1", "pii", "-", "-"]
    assert out[3].split() == ["json", "valid_json", "app", "call", "0.5", "-", "-", "prompt_name=support|billing"]
    assert main(["eval", "test", "card", "--config", str(cfg), "--output", "pay with 4111-1111-1111-1111",
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"rule": "card", "metric": "pii", "value": 0.0, "label": "fail",
                                                   "reason": "found 1 card", "error": None, "judge_model": None,
                                                   "judge_cost_usd": None}
    assert main(["eval", "test", "card", "--config", str(cfg), "--format", "json"]) == 1  # no output given
    with pytest.raises(SystemExit, match="no rule 'nope'"):
        main(["eval", "test", "nope", "--config", str(cfg)])
    bad = tmp_path / "bad.toml"
    bad.write_text('[[evaluation.rules]]\nname = "x"\nmetric = "pii"\nsampling = 2\n')
    with pytest.raises(SystemExit, match=r"sampling is a number from 0\.0 to 1\.0"):
        main(["eval", "list", "--config", str(bad)])



def test_serve_refuses_a_bad_rule_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[evaluation.rules]]\nname = "x"\nmetric = "regex"\n')
    with pytest.raises(SystemExit) as e:
        main(["serve", "--config", str(bad), "--data-dir", str(tmp_path / "data")])
    assert str(e.value) == f"promptpulse serve: {bad}: rule 'x': metric regex needs params.pattern"
    assert not (tmp_path / "data").exists()


def test_attribute_only_rules_need_no_content(store) -> None:
    config = load_evaluation({"rules": [{"name": "model-name", "metric": "regex", "params": {"pattern": "^gpt-4o$"},
                                         "map": {"output": "attributes.gen_ai.request.model"},
                                         "filters": {"prompt_name": "support"}}]})
    assert not config.rules[0].needs_content
    report = ProcessorEvaluator(store, config).run_pass(T0 + dt.timedelta(seconds=41), T0 + dt.timedelta(seconds=51))
    # calls 41..50: no content captured, still evaluated on their attributes
    assert report.rules["model-name"].as_dict() == {"matched": 10, "sampled": 10, "no_content": 0, "already": 0,
                                                    "scored": 10, "errors": 0, "judge_cost_usd": 0.0}


def test_failed_calls_are_not_evaluated(store) -> None:
    at = T0 - dt.timedelta(minutes=30)
    ok, failed = _span(300, at=at, output=OK), _span(301, at=at, output=OK)
    failed[13] = "Error"  # StatusCode
    store.insert_otel_traces([ok, failed], dedup_token=uuid.uuid4().hex)
    config = load_evaluation({"rules": [{"name": "json-ok", "metric": "valid_json"}]})
    report = ProcessorEvaluator(store, config).run_pass(at - dt.timedelta(minutes=1), at + dt.timedelta(minutes=1))
    assert report.calls == 2 and report.rules["json-ok"].matched == 1 and report.rules["json-ok"].scored == 1
