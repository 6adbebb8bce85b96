"""The dashboard model (Dashboard, Panel, Variable) and its rendering to Grafana 11/12 dashboard JSON for the
grafana-clickhouse-datasource plugin (v4 query model). The data source is the ``${datasource}`` variable, which
defaults to the provisioned data source (uid ``promptpulse-clickhouse``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLUGIN_ID = "grafana-clickhouse-datasource"
# The oldest plugin the queries are written for: 4.0.3 made $__fromTime/$__toTime/$__timeFilter DateTime (epoch
# seconds) again (4.0.0-4.0.2 rendered DateTime64(3)); 4.13 added $__adHocFilters, which the raw-call drill-down
# tables use to place the ad-hoc filters.
PLUGIN_MIN_VERSION = "4.13.0"
GRAFANA_MIN_VERSION = "11.0.0"
# dashboards/provisioning/datasources/clickhouse.yaml; the alert rules pin it too
DATASOURCE_UID = "promptpulse-clickhouse"
DATASOURCE_NAME = "PromptPulse ClickHouse"
DS_REF = {"type": PLUGIN_ID, "uid": "${datasource}"}
SCHEMA_VERSION = 39
# plugin v4: Format.TIMESERIES = 0, Format.TABLE = 1
FORMAT = {"time_series": 0, "table": 1}
QUERY_TYPE = {"time_series": "timeseries", "table": "table"}
TIME_OPTIONS = ("1h", "24h", "7d", "30d")
REFRESH = "30s"

GREEN, YELLOW, RED, BLUE = "green", "yellow", "red", "blue"
Thresholds = tuple[tuple[str, float | None], ...]


@dataclass(frozen=True)
class Panel:
    key: str  # stable name, used by the tests
    title: str
    type: str  # stat, timeseries, table, piechart, barchart, bargauge
    sql: str
    format: str = "table"  # or time_series
    unit: str = ""
    description: str = ""
    w: int = 6
    h: int = 6
    decimals: int | None = None
    thresholds: Thresholds = ((GREEN, None),)
    overrides: tuple[tuple[str, dict[str, Any]], ...] = ()  # (field name, properties)
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)  # fieldConfig.defaults.custom
    raw: bool = False  # reads raw llm_calls (drill-down)
    # data links: (field name, links); field "" puts them on every field
    links: tuple[tuple[str, tuple[Link, ...]], ...] = ()
    repeat: str = ""  # a multi-value variable: one copy of the panel per selected value
    interval: str = ""  # the panel's min interval, e.g. "$interval" (sets $__interval / $__interval_s)


@dataclass(frozen=True)
class Link:
    """A data link; ``url`` may use Grafana's ${__data.fields.<name>}, ${__value.raw}, ${var:queryparam}."""
    title: str
    url: str
    target_blank: bool = False


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    kind: str  # query, custom, textbox, interval, adhoc, constant
    query: str = ""  # SQL for query variables, comma-separated options for custom / interval, default for textbox
    multi: bool = True
    include_all: bool = True
    default: str = ""
    description: str = ""
    hide: int = 0  # 0 shown, 1 label hidden, 2 hidden


@dataclass(frozen=True)
class Annotation:
    """An annotation query (the ClickHouse plugin reads columns time, timeEnd, text, tags)."""
    name: str
    sql: str
    color: str
    enable: bool = True


@dataclass(frozen=True)
class Row:
    """A collapsible row of panels."""
    title: str
    panels: tuple[Panel, ...]
    collapsed: bool = False


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]  # every panel, in order (with rows: the rows' panels, flattened)
    variables: tuple[Variable, ...]
    tags: tuple[str, ...] = ("promptpulse",)
    time_from: str = "now-24h"
    rows: tuple[Row, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    timeseries_interval: str = ""  # min interval of every time series panel, e.g. "$interval"

    def __post_init__(self) -> None:
        if self.rows and tuple(p for r in self.rows for p in r.panels) != self.panels:
            raise ValueError(f"{self.uid}: panels must be the rows' panels in order")

    @property
    def filename(self) -> str:
        return f"{self.uid}.json"


def _thresholds(steps: Thresholds) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _override(name: str, props: dict[str, Any]) -> dict[str, Any]:
    out = []
    for key, value in props.items():
        if key == "thresholds":
            value = _thresholds(value)
        out.append({"id": key, "value": value})
    return {"matcher": {"id": "byName", "options": name}, "properties": out}


def _panel_options(panel: Panel) -> dict[str, Any]:
    base: dict[str, Any] = {}
    if panel.type == "stat":
        base = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
                "justifyMode": "auto", "orientation": "auto"}
    elif panel.type == "timeseries":
        base = {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                           "calcs": ["mean", "max", "lastNotNull"]},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    elif panel.type == "table":
        base = {"showHeader": True, "cellHeight": "sm"}  # no footer: Grafana 12 dropped the option
    elif panel.type == "piechart":
        base = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
                "pieType": "pie", "legend": {"displayMode": "table", "placement": "right", "showLegend": True,
                                             "values": ["value", "percent"]}}
    elif panel.type == "barchart":
        base = {"orientation": "auto", "showValue": "auto", "stacking": "none", "xTickLabelRotation": 0,
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    elif panel.type == "bargauge":
        base = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
                "orientation": "horizontal", "displayMode": "gradient"}
    return {**base, **panel.options}


def _link(link: Link) -> dict[str, Any]:
    return {"title": link.title, "url": link.url, "targetBlank": link.target_blank}


def query_target(sql: str, fmt: str = "table", ref_id: str = "A") -> dict[str, Any]:
    """A raw-SQL query of the ClickHouse plugin (v4 model)."""
    return {
        "refId": ref_id,
        "datasource": DS_REF,
        # without pluginVersion the plugin takes a target for a v3 query and migrates it when the editor opens
        "pluginVersion": PLUGIN_MIN_VERSION,
        "editorType": "sql",
        "format": FORMAT[fmt],
        "queryType": QUERY_TYPE[fmt],
        "rawSql": sql,
    }


def render_panel(panel: Panel, panel_id: int, x: int, y: int, timeseries_interval: str = "") -> dict[str, Any]:
    defaults: dict[str, Any] = {"thresholds": _thresholds(panel.thresholds), "color": {"mode": "thresholds"}
                                if panel.type in ("stat", "bargauge") else {"mode": "palette-classic"}}
    if panel.unit:
        defaults["unit"] = panel.unit
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.custom:
        defaults["custom"] = panel.custom
    overrides = [_override(n, p) for n, p in panel.overrides]
    for name, links in panel.links:
        if not name:
            defaults["links"] = [_link(lk) for lk in links]
            continue
        over = next((o for o in overrides if o["matcher"]["options"] == name), None)
        if over is None:
            over = _override(name, {})
            overrides.append(over)
        over["properties"].append({"id": "links", "value": [_link(lk) for lk in links]})
    extra: dict[str, Any] = {}
    if panel.repeat:
        extra = {"repeat": panel.repeat, "repeatDirection": "h", "maxPerRow": 3}
    interval = panel.interval or (timeseries_interval if panel.type == "timeseries" else "")
    if interval:
        extra["interval"] = interval
    return {
        "id": panel_id,
        "type": panel.type,
        "title": panel.title,
        "description": panel.description,
        "datasource": DS_REF,
        "gridPos": {"h": panel.h, "w": panel.w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": _panel_options(panel),
        **extra,
        "targets": [query_target(panel.sql, panel.format)],
    }


def render_variable(var: Variable) -> dict[str, Any]:
    common: dict[str, Any] = {"description": var.description} if var.description else {}
    return {**_render_variable(var), **common}


def _render_variable(var: Variable) -> dict[str, Any]:
    if var.kind == "interval":
        options = [o.strip() for o in var.query.split(",")]
        current = var.default or "$__auto_interval_" + var.name
        return {"name": var.name, "label": var.label, "type": "interval", "query": var.query, "hide": var.hide,
                "auto": True, "auto_count": 200, "auto_min": options[0], "refresh": 2,
                "current": {"selected": True, "text": var.default or "auto", "value": current},
                "options": [{"selected": not var.default, "text": "auto", "value": "$__auto_interval_" + var.name}]
                + [{"selected": o == var.default, "text": o, "value": o} for o in options]}
    if var.kind == "adhoc":
        return {"name": var.name, "label": var.label, "type": "adhoc", "datasource": DS_REF, "hide": var.hide,
                "filters": []}
    if var.kind == "constant":
        return {"name": var.name, "label": var.label, "type": "constant", "query": var.query, "hide": 2,
                "skipUrlSync": True, "current": {"selected": False, "text": var.query, "value": var.query},
                "options": [{"selected": True, "text": var.query, "value": var.query}]}
    if var.kind == "query":
        all_current = ({"selected": True, "text": ["All"], "value": ["$__all"]} if var.multi
                       else {"selected": True, "text": "All", "value": "$__all"} if var.include_all else {})
        return {"name": var.name, "label": var.label, "type": "query", "datasource": DS_REF,
                "query": var.query, "refresh": 2, "sort": 1, "regex": "",
                "multi": var.multi, "includeAll": var.include_all, "current": all_current, "hide": var.hide,
                "options": []}
    if var.kind == "custom":
        options = [o.strip() for o in var.query.split(",")]
        return {"name": var.name, "label": var.label, "type": "custom", "query": var.query,
                "multi": False, "includeAll": False, "hide": var.hide,
                "current": {"selected": True, "text": var.default, "value": var.default},
                "options": [{"selected": o == var.default, "text": o, "value": o} for o in options]}
    if var.kind == "textbox":
        return {"name": var.name, "label": var.label, "type": "textbox", "query": var.default, "hide": var.hide,
                "current": {"selected": False, "text": var.default, "value": var.default},
                "options": [{"selected": True, "text": var.default, "value": var.default}]}
    raise ValueError(var.kind)


def layout(panels: tuple[Panel, ...], y0: int = 0) -> list[tuple[Panel, int, int]]:
    """Left to right in the 24-column grid, wrapping; a row is as tall as its tallest panel."""
    out, x, y, row_h = [], 0, y0, 0
    for panel in panels:
        if x + panel.w > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append((panel, x, y))
        x += panel.w
        row_h = max(row_h, panel.h)
    return out


def _bottom(placed: list[tuple[Panel, int, int]], y0: int) -> int:
    return max((y + p.h for p, _, y in placed), default=y0)


def render_panels(dash: Dashboard) -> list[dict[str, Any]]:
    """The dashboard's panels; with rows, a row panel before its panels (nested in it when collapsed)."""
    if not dash.rows:
        return [render_panel(p, i + 1, x, y, dash.timeseries_interval)
                for i, (p, x, y) in enumerate(layout(dash.panels))]
    out: list[dict[str, Any]] = []
    next_id, y = 1, 0
    for row in dash.rows:
        row_doc: dict[str, Any] = {"id": next_id, "type": "row", "title": row.title, "collapsed": row.collapsed,
                                   "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
        next_id += 1
        placed = layout(row.panels, y + 1)
        rendered = []
        for p, px, py in placed:
            rendered.append(render_panel(p, next_id, px, py, dash.timeseries_interval))
            next_id += 1
        out.append(row_doc)
        if row.collapsed:
            row_doc["panels"] = rendered
            y += 1
        else:
            out.extend(rendered)
            y = _bottom(placed, y + 1)
    return out


def panel_ids(dash: Dashboard) -> dict[str, int]:
    """Panel key -> the panel's id in the rendered dashboard (alert rules link to it)."""
    flat = [q for p in render_panels(dash) for q in ([p, *p.get("panels", [])])]
    by_title = {(p["title"], p["type"]): p["id"] for p in flat if p["type"] != "row"}
    return {p.key: by_title[(p.title, p.type)] for p in dash.panels}


def render_annotation(a: Annotation) -> dict[str, Any]:
    return {"name": a.name, "datasource": DS_REF, "enable": a.enable, "hide": False, "iconColor": a.color,
            "target": query_target(a.sql, ref_id="Anno")}


def render_dashboard(dash: Dashboard) -> dict[str, Any]:
    # Defaults to the provisioned data source (as the alert rules are); Grafana falls back to the default ClickHouse
    # data source when that uid does not exist.
    datasource_var = {"name": "datasource", "label": "Data source", "type": "datasource", "query": PLUGIN_ID,
                      "regex": "", "hide": 0, "refresh": 1, "options": [],
                      "current": {"selected": True, "text": DATASOURCE_NAME, "value": DATASOURCE_UID}}
    return {
        "__inputs": [],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_MIN_VERSION},
            {"type": "datasource", "id": PLUGIN_ID, "name": "ClickHouse", "version": PLUGIN_MIN_VERSION},
        ],
        "uid": dash.uid,
        "title": dash.title,
        "description": dash.description,
        "tags": list(dash.tags),
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": dash.time_from, "to": "now"},
        # quick_ranges are the time picker's presets (time_options is not in the schema any more)
        "timepicker": {"refresh_intervals": [REFRESH, "1m", "5m", "15m", "1h"],
                       "quick_ranges": [{"display": f"Last {o}", "from": f"now-{o}", "to": "now"}
                                        for o in TIME_OPTIONS]},
        "refresh": REFRESH,
        "timezone": "",
        "liveNow": False,
        "links": [{"title": "PromptPulse", "type": "dashboards", "tags": ["promptpulse"], "asDropdown": True,
                   "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False,
                   "tooltip": "Other PromptPulse dashboards"}],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"},
                                 *(render_annotation(a) for a in dash.annotations)]},
        "templating": {"list": [datasource_var, *(render_variable(v) for v in dash.variables)]},
        "panels": render_panels(dash),
    }
