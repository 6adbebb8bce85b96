// Shared helpers for the generated checks (see check.mjs).

// Dashboard JSON holds plain strings where @grafana/schema declares string enums (ThresholdsMode.Absolute is
// "absolute"): Lit maps every string enum to the union of its values, keeping everything else, so a JSON
// literal type-checks exactly when Grafana's types accept its values.
export type Lit<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Lit<U>>
      : T extends object
        ? { [K in keyof T]: Lit<T[K]> }
        : T;

// Panel options and custom field config: Grafana merges what a dashboard gives with the panel's defaults, so
// every field is optional there (the schema marks fields with defaults as required); types and unknown keys are
// still checked.
export type LitPartial<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<LitPartial<U>>
      : T extends object
        ? { [K in keyof T]?: LitPartial<T[K]> }
        : T;

// grafana-clickhouse-datasource's raw SQL query model (src/types/sql.ts, CHSqlQuery, plugin v4).
export interface CHSqlQuery {
  refId: string;
  hide?: boolean;
  datasource?: { type?: string; uid?: string };
  pluginVersion: string;
  editorType: 'sql';
  rawSql: string;
  format?: 0 | 1 | 2 | 3 | 4; // timeseries, table, logs, traces, autodetect
  queryType?: 'table' | 'logs' | 'timeseries' | 'traces';
  meta?: { timezone?: string };
  expand?: boolean;
}

// A panel whose options and fieldConfig.defaults.custom are the panel plugin's own types.
export type PanelOf<Panel, FieldConfigSource, FieldConfig, Options, Custom> = Omit<
  Lit<Panel>,
  'options' | 'fieldConfig' | 'targets'
> & {
  options?: LitPartial<Options>;
  fieldConfig?: Omit<Lit<FieldConfigSource>, 'defaults'> & {
    defaults: Omit<Lit<FieldConfig>, 'custom'> & { custom?: LitPartial<Custom> };
  };
  targets?: CHSqlQuery[];
};

// Panels without custom field options (stat, bar gauge) accept none.
export type NoCustom = Record<string, never>;
