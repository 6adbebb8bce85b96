// Type-check every PromptPulse dashboard against @grafana/schema of each Grafana version the docs name.
//
//   npm ci && node check.mjs [DIR]      (DIR: the dashboard JSON files; default: ..)
//
// For each version and dashboard, writes a TypeScript module in which the dashboard (without the export-only
// __inputs / __requires) `satisfies` the schema's Dashboard, every panel its panel plugin's Options and
// FieldConfig, every query the ClickHouse plugin's query model and every variable VariableModel, then runs the
// TypeScript compiler on them. Object literals are checked for unknown keys too. Offline after `npm ci`.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
const dashboardsDir = path.resolve(process.argv[2] ?? path.join(here, '..'));
const genDir = path.join(here, '.gen');

// Grafana version -> where the installed @grafana/schema keeps its generated types
const VERSIONS = {
  '11': {
    pkg: 'grafana-schema-11',
    index: 'dist/esm/index.d.ts',
    dashboard: 'dist/esm/raw/dashboard/x/dashboard_types.gen',
    panel: (id, name) => `dist/esm/raw/composable/${id}/panelcfg/x/${name}PanelCfg_types.gen`,
  },
  '12': {
    pkg: 'grafana-schema-12',
    index: 'dist/types/index.d.ts',
    dashboard: 'dist/types/raw/dashboard/x/types.gen',
    panel: (id) => `dist/types/raw/composable/${id}/panelcfg/x/types.gen`,
  },
};
// variable type -> keys Grafana's variable models read that VariableModel leaves out (typed in typesModule)
const VARIABLE_EXTRAS = {
  interval: { auto: 1, auto_count: 1, auto_min: 1 },
  adhoc: { filters: 1, baseFilters: 1 },
};
// panel type -> [schema name, has FieldConfig]
const PANELS = {
  stat: ['Stat', false],
  timeseries: ['TimeSeries', true],
  table: ['Table', true],
  piechart: ['PieChart', true],
  barchart: ['BarChart', true],
  bargauge: ['BarGauge', false],
};

function typesModule(version) {
  const v = VERSIONS[version];
  const mod = (p) => JSON.stringify(path.join(here, 'node_modules', v.pkg, p));
  const lines = [
    `import type * as D from ${mod(v.dashboard)};`,
    `import type { Lit, PanelOf, NoCustom } from '../lib';`,
    `export type { Lit, CHSqlQuery } from '../lib';`,
    `export type Dashboard = Omit<Lit<D.Dashboard>, 'panels' | 'templating'> & { panels: unknown[]; templating: { list: unknown[] } };`,
    `export type Variable = Lit<D.VariableModel>;`,
    `export type Row = Omit<Lit<D.RowPanel>, 'panels'> & { panels: unknown[] };`,
    `export type Annotation = Omit<Lit<D.AnnotationQuery>, 'target'>;`,
    `export type VariableExtra_interval = { auto: boolean; auto_count: number; auto_min: string };`,
    `type AdHocFilter = { key: string; operator: '=' | '!=' | '<' | '>' | '=~' | '!~'; value: string; condition?: string };`,
    `export type VariableExtra_adhoc = { filters: AdHocFilter[]; baseFilters?: AdHocFilter[] };`,
  ];
  for (const [id, [name, hasCustom]] of Object.entries(PANELS)) {
    lines.push(`import type * as ${id} from ${mod(v.panel(id, name))};`);
    const custom = hasCustom ? `${id}.FieldConfig` : 'NoCustom';
    lines.push(`export type Panel_${id} = PanelOf<D.Panel, D.FieldConfigSource, D.FieldConfig, ${id}.Options, ${custom}>;`);
  }
  return lines.join('\n') + '\n';
}

function checkModule(version, name, doc) {
  const { __inputs, __requires, panels = [], templating = { list: [] }, ...rest } = doc;
  const out = [`import type * as G from './types-${version}';`, `// ${name}`];
  const builtIn = (rest.annotations?.list ?? []).filter((a) => a.builtIn);
  const head = { ...rest, panels: [], templating: { list: [] }, annotations: { list: builtIn } };
  out.push(`export const dashboard = ${JSON.stringify(head)} satisfies G.Dashboard;`);
  templating.list.forEach((v, i) => {
    // keys Grafana reads that the schema's VariableModel does not list: checked by their own types
    const extra = Object.fromEntries(Object.entries(v).filter(([k]) => k in (VARIABLE_EXTRAS[v.type] ?? {})));
    const rest = Object.fromEntries(Object.entries(v).filter(([k]) => !(k in extra)));
    out.push(`export const variable_${i} = ${JSON.stringify(rest)} satisfies G.Variable;`);
    if (Object.keys(extra).length) {
      out.push(`export const variable_${i}_${v.type} = ${JSON.stringify(extra)} satisfies G.VariableExtra_${v.type};`);
    }
  });
  // the schema types an annotation's target as the built-in Grafana one; a data source's is its own query model
  (rest.annotations?.list ?? []).forEach((a, i) => {
    if (a.builtIn) return;
    const { target, ...annotation } = a;
    out.push(`export const annotation_${i} = ${JSON.stringify(annotation)} satisfies G.Annotation;`);
    out.push(`export const annotation_${i}_query = ${JSON.stringify(target)} satisfies G.CHSqlQuery;`);
  });
  const all = [];
  for (const p of panels) {
    if (p.type === 'row') {
      out.push(`export const row_${p.id} = ${JSON.stringify({ ...p, panels: [] })} satisfies G.Row;`);
      all.push(...(p.panels ?? []));
    } else {
      all.push(p);
    }
  }
  for (const p of all) {
    if (!(p.type in PANELS)) {
      throw new Error(`${name}: panel ${p.id} has type ${p.type}, which this check does not know`);
    }
    out.push(`export const panel_${p.id} = ${JSON.stringify(p)} satisfies G.Panel_${p.type};`);
    (p.targets ?? []).forEach((t, i) => out.push(`export const query_${p.id}_${i} = ${JSON.stringify(t)} satisfies G.CHSqlQuery;`));
  }
  return out.join('\n') + '\n';
}

fs.rmSync(genDir, { recursive: true, force: true });
fs.mkdirSync(genDir, { recursive: true });
const files = fs.readdirSync(dashboardsDir).filter((f) => f.endsWith('.json')).sort();
if (files.length === 0) {
  console.error(`no dashboard JSON in ${dashboardsDir}`);
  process.exit(2);
}
// One program per version: the schema's panel types import '@grafana/schema', mapped to that version's copy.
const diagnostics = [];
for (const [version, v] of Object.entries(VERSIONS)) {
  const roots = [];
  fs.writeFileSync(path.join(genDir, `types-${version}.ts`), typesModule(version));
  for (const f of files) {
    const doc = JSON.parse(fs.readFileSync(path.join(dashboardsDir, f), 'utf8'));
    const target = path.join(genDir, `${path.basename(f, '.json')}.grafana${version}.ts`);
    fs.writeFileSync(target, checkModule(version, f, doc));
    roots.push(target);
  }
  const program = ts.createProgram(roots, {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    baseUrl: here,
    paths: { '@grafana/schema': [path.join('node_modules', v.pkg, v.index)] },
    skipLibCheck: true,
    types: [],
  });
  diagnostics.push(...ts.getPreEmitDiagnostics(program));
}
for (const d of diagnostics) {
  const where = d.file ? `${path.relative(here, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '';
  console.error(`${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}
const versions = Object.keys(VERSIONS).map((v) => `Grafana ${v} (${VERSIONS[v].pkg})`).join(', ');
if (diagnostics.length) {
  console.error(`${diagnostics.length} schema error(s) in ${files.length} dashboards against ${versions}`);
  process.exit(1);
}
console.log(`${files.length} dashboards type-check against @grafana/schema for ${versions}`);
