import { ApiError, get, prefetch } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { dateTime, number, rangeStart } from '../format.js';
import { href, navigate } from '../router.js';
import { useData } from '../hooks.js';
import { Bars, Empty, ErrorBox, Loading, Select, TimeChart, Severity, levelOf } from '../components.js';

const INTERVALS = { '1h': 300, '24h': 3600, '7d': 21600, '30d': 86400 };
const RANGE_MS = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 };
const REFRESH_MS = 15000;

/** Without /stats/summary (an older API), the same figures from the alert aggregations. */
async function summaryFromAlerts(query) {
  const counts = (field) => get('/alerts/counts', { field, size: 10, start: query.start });
  const [over, severity, rule, host, agency, technique] = await Promise.all([
    get('/alerts/histogram', { interval: query.interval, start: query.start }),
    counts('event.severity'),
    counts('rule.name'),
    counts('host.name'),
    counts('organization.id'),
    counts('threat.technique.id'),
  ]);
  return {
    alerts_over_time: over,
    by_severity: severity.map((row) => ({ value: levelOf(Number(row.value)), count: row.count })),
    by_rule: rule,
    by_host: host,
    by_agency: agency,
    by_technique: technique,
    incidents_by_status: [],
  };
}

function summaryQuery(range) {
  return { start: rangeStart(range), interval: INTERVALS[range] };
}

/** Start the dashboard's requests before the session check answers. */
export function prefetchDashboard(params) {
  prefetch('/stats/summary', summaryQuery(params.range || '24h'));
  prefetch('/stats/coverage');
  prefetch('/sources');
}

async function loadSummary(range) {
  const query = summaryQuery(range);
  try {
    return await get('/stats/summary', query);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return summaryFromAlerts(query);
    throw error;
  }
}

/** Every bucket of the range, empty ones included, so that time reads evenly left to right. */
function fillBuckets(buckets, range) {
  const step = INTERVALS[range] * 1000;
  const first = Math.floor((Date.now() - RANGE_MS[range]) / step) * step;
  const last = Math.floor(Date.now() / step) * step;
  const counts = new Array(Math.max(1, Math.round((last - first) / step) + 1)).fill(0);
  for (const bucket of buckets || []) {
    const index = Math.floor((new Date(bucket.start).getTime() - first) / step);
    if (index >= 0 && index < counts.length) counts[index] += bucket.count;
  }
  return counts.map((count, i) => ({ start: new Date(first + i * step).toISOString(), count }));
}

function rows(value) {
  if (Array.isArray(value)) return value;
  return Object.entries(value || {}).map(([v, count]) => ({ value: v, count }));
}

/** ATT&CK techniques seen in alerts (shade) against those the loaded rules cover (outline). */
function Heatmap({ seen, coverage }) {
  const hits = Object.fromEntries(rows(seen).map((r) => [r.value, r.count]));
  const covered = (coverage && coverage.techniques) || {};
  const ids = [...new Set([...Object.keys(covered), ...Object.keys(hits)])].sort();
  const max = Math.max(1, ...Object.values(hits));
  return html`<section class="card" aria-labelledby="heatmap-title">
    <h3 id="heatmap-title">${t('dashboard.heatmap')}</h3>
    <p class="muted">${t('dashboard.heatmapHint')}</p>
    ${ids.length === 0
      ? html`<${Empty} />`
      : html`<ul class="heatmap">
          ${ids.map((id) => {
            const count = hits[id] || 0;
            const level = count ? Math.ceil((count / max) * 4) : 0;
            const label = t('dashboard.technique', { id, alerts: number(count), rules: number(covered[id] || 0) });
            return html`<li class=${`cell heat-${level}`} title=${label} aria-label=${label}>
              <a href=${href('/search', { kind: 'alerts', filter: `threat.technique.id:${id}` })}>${id}</a>
              <span>${number(count)}</span>
            </li>`;
          })}
        </ul>`}
  </section>`;
}

function Sources() {
  const { data, error } = useData(() => get('/sources'), [], REFRESH_MS);
  if (error && error.status === 404) return null;
  return html`<section class="card" aria-labelledby="sources-title">
    <h3 id="sources-title">${t('dashboard.pipeline')}</h3>
    <${ErrorBox} error=${error} />
    ${data && data.length === 0 && html`<${Empty} />`}
    ${data && data.length > 0 &&
    html`<div class="table-wrap"><table class="grid compact">
      <thead><tr>
        <th scope="col">${t('source.id')}</th><th scope="col">${t('incident.agency')}</th>
        <th scope="col">${t('source.lastSeen')}</th><th scope="col">${t('source.lastHour')}</th>
        <th scope="col">${t('source.rate')}</th><th scope="col">${t('source.state')}</th>
      </tr></thead>
      <tbody>${data.map((s) => html`<tr class=${s.silent ? 'silent' : ''}>
        <td>${s.id}</td><td>${s.agency || '—'}</td><td>${dateTime(s.last_seen)}</td>
        <td class="num">${number(s.events_last_hour)}</td><td class="num">${number(s.rate_per_second)}</td>
        <td>${s.silent ? html`<span class="badge sev-high">${t('source.silent')}</span>` : html`<span class="badge ok">${t('source.alive')}</span>`}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

export function Dashboard({ params }) {
  const range = params.range || '24h';
  const summary = useData(() => loadSummary(range), [range], REFRESH_MS);
  const coverage = useData(() => get('/stats/coverage').catch(() => ({ techniques: {} })), []);
  const data = summary.data;
  const pick = (field) => (value) => href('/search', { kind: 'alerts', range, filter: `${field}:${value}` });
  return html`<section class="dashboard">
    <div class="page-head">
      <h1>${t('dashboard.title')}</h1>
      <div class="filters">
        <${Select} label=${t('common.timeRange')} value=${range} all=${false} onChange=${(v) => navigate('/dashboard', { range: v }, true)}
          options=${Object.keys(INTERVALS).map((r) => [r, t(`range.${r}`)])} />
      </div>
    </div>
    <${ErrorBox} error=${summary.error} />
    ${!data && !summary.error && html`<${Loading} />`}
    ${data && html`
      <${TimeChart} title=${t('dashboard.overTime')} buckets=${fillBuckets(data.alerts_over_time, range)} interval=${INTERVALS[range]} />
      <div class="cards">
        <${Bars} title=${t('dashboard.bySeverity')} rows=${rows(data.by_severity)} render=${(v) => html`<${Severity} level=${v} />`} />
        <${Bars} title=${t('dashboard.byStatus')} rows=${rows(data.incidents_by_status)} render=${(v) => t(`status.${v}`)}
          onPick=${(v) => href('/incidents', { status: v })} />
        <${Bars} title=${t('dashboard.byRule')} rows=${rows(data.by_rule)} onPick=${pick('rule.name')} />
        <${Bars} title=${t('dashboard.byHost')} rows=${rows(data.by_host)} onPick=${pick('host.name')} />
        <${Bars} title=${t('dashboard.byAgency')} rows=${rows(data.by_agency)} onPick=${pick('organization.id')} />
      </div>
      <${Heatmap} seen=${data.by_technique} coverage=${coverage.data} />`}
    <${Sources} />
  </section>`;
}
