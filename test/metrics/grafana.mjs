// What Grafana does with a dashboard before it queries Prometheus, for the subset of features the
// project's dashboards use: resolve query variables (label_values with an optional regex capture;
// multi-value "All"), then interpolate $variables and $__rate_interval into each panel's PromQL.
import { readFileSync } from 'node:fs';

export function loadDashboard(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** Every panel target, rows' nested panels included: [{ panel, refId, expr }]. */
export function panelQueries(dashboard) {
  const out = [];
  const visit = (panels) => {
    for (const p of panels ?? []) {
      if (p.type === 'row') visit(p.panels);
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title, refId: t.refId, expr: t.expr });
    }
  };
  visit(dashboard.panels);
  return out;
}

/** Grafana's escaping of one value inside a Prometheus regex matcher (the string is a PromQL literal, hence the doubled backslashes). */
function regexEscape(value) {
  return value.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
}

/** The text Grafana substitutes for a variable in a Prometheus query. */
function format(variable) {
  if (!variable.multi) return variable.values[0].replace(/\\/g, '\\\\').replace(/'/g, "\\\\'");
  const escaped = variable.values.map(regexEscape);
  return escaped.length === 1 ? escaped[0] : `(${escaped.join('|')})`;
}

export function interpolate(expr, variables, { rateInterval }) {
  let out = expr.replaceAll('$__rate_interval', rateInterval);
  // Longest names first, so $job does not eat the start of $jobname.
  for (const [name, v] of [...variables].sort((a, b) => b[0].length - a[0].length)) {
    const text = format(v);
    out = out.replaceAll(`\${${name}}`, text).replaceAll(`[[${name}]]`, text).replaceAll(`$${name}`, text);
  }
  const left = /\$\{?\w+/.exec(out);
  if (left) throw new Error(`unresolved variable ${left[0]} in: ${out}`);
  return out;
}

/** /regex/flags as Grafana writes it in a variable's regex field. */
function parseRegex(text) {
  const m = /^\/(.*)\/([gimsuy]*)$/s.exec(text);
  return m ? new RegExp(m[1], m[2]) : new RegExp(text);
}

/**
 * Resolves the dashboard's query variables in order (later ones may use earlier ones), asking
 * Prometheus over [start, end]. Returns Map name → { values, multi }; throws when a variable has
 * no value, since every panel that uses it would then be empty.
 */
export async function resolveVariables(dashboard, prom, { start, end, rateInterval }) {
  const vars = new Map();
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type === 'datasource') continue; // every query goes to the Prometheus under test
    if (v.type !== 'query') throw new Error(`variable ${v.name}: type ${v.type} is not handled by this test`);
    const query = interpolate(typeof v.query === 'string' ? v.query : v.query.query, vars, { rateInterval });
    const m = /^label_values\((?:(.+),\s*)?(\w+)\)$/.exec(query.trim());
    if (!m) throw new Error(`variable ${v.name}: only label_values(...) queries are handled, got ${query}`);
    const [, selector, label] = m;
    let values = await prom.api(`label/${label}/values`, { start, end, ...(selector ? { 'match[]': selector } : {}) });
    if (v.regex) {
      const re = parseRegex(v.regex);
      values = values.flatMap((value) => {
        const hit = re.exec(value);
        if (!hit) return [];
        return [hit.groups?.value ?? hit.groups?.text ?? hit[1] ?? value];
      });
    }
    values = [...new Set(values)];
    if (v.sort === 1) values.sort();
    if (values.length === 0) throw new Error(`variable $${v.name}: ${query} returned no values`);
    // A multi-value variable showing "All" gets every value; a single-value one its first.
    vars.set(v.name, { values: v.multi ? values : [values[0]], multi: Boolean(v.multi) });
  }
  return vars;
}

/**
 * node:test subtests, one per panel query of `file`: resolve the variables over `window`, run each
 * query as Grafana's range query would, and fail on any that returns no finite value. `pending`
 * (expr → reason | false) skips queries whose source is not scraped yet, visibly.
 */
export async function checkDashboardPanels(t, { file, prom, window, step, rateInterval, pending = () => false }) {
  const dashboard = loadDashboard(file);
  const variables = await resolveVariables(dashboard, prom, { ...window, rateInterval });
  t.diagnostic(`variables: ${JSON.stringify(Object.fromEntries([...variables].map(([k, v]) => [k, v.values])))}`);
  const queries = panelQueries(dashboard);
  if (queries.length === 0) throw new Error(`${file} has no panel queries`);
  for (const q of queries) {
    const expr = interpolate(q.expr, variables, { rateInterval });
    await t.test(`${q.panel} [${q.refId}]`, { skip: pending(expr) }, async () => {
      const { result } = await prom.api('query_range', { query: expr, start: window.start, end: window.end, step });
      if (!result.some((s) => s.values.some(([, v]) => Number.isFinite(Number(v))))) throw new Error(`no data for: ${expr}`);
    });
  }
}
