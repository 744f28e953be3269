import { html } from './html.js';
import { t } from './i18n.js';
import { number, shortTime } from './format.js';

export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'informational'];
export const STATUSES = ['new', 'acknowledged', 'investigating', 'resolved', 'false_positive'];

/** Sigma level from an ECS 0-100 severity (the scale alerts carry). */
export function levelOf(severity) {
  if (typeof severity === 'string' && !/^\d+$/.test(severity)) return severity;
  severity = Number(severity);
  if (severity >= 90) return 'critical';
  if (severity >= 70) return 'high';
  if (severity >= 40) return 'medium';
  if (severity >= 21) return 'low';
  return 'informational';
}

export function Severity({ level }) {
  const name = levelOf(level);
  return html`<span class="badge sev-${name}">${t(`severity.${name}`)}</span>`;
}

export function Status({ status }) {
  return html`<span class="badge status-${status}">${t(`status.${status}`)}</span>`;
}

export function Loading() {
  return html`<p class="muted" role="status">${t('common.loading')}</p>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${t('common.error')}: ${error.detail || error.message}</p>`;
}

export function Empty({ children }) {
  return html`<p class="muted">${children || t('common.empty')}</p>`;
}

export function Json({ value }) {
  return html`<pre class="json" tabindex="0">${JSON.stringify(value, null, 2)}</pre>`;
}

export function Field({ label, children, wide }) {
  return html`<label class=${wide ? 'field wide' : 'field'}><span>${label}</span>${children}</label>`;
}

export function Select({ value, onChange, options, label, all }) {
  return html`<${Field} label=${label}>
    <select value=${value} onChange=${(e) => onChange(e.target.value)}>
      ${all !== false && html`<option value="">${t('common.all')}</option>`}
      ${options.map(([v, text]) => html`<option value=${v}>${text}</option>`)}
    </select>
  <//>`;
}

/** Horizontal bars: an accessible list, a label and a count per row. */
export function Bars({ rows, title, render, onPick }) {
  const max = Math.max(1, ...rows.map((r) => r.count));
  return html`<section class="card" aria-label=${title}>
    <h3>${title}</h3>
    ${rows.length === 0
      ? html`<${Empty} />`
      : html`<ol class="bars">
          ${rows.map(
            (row) => html`<li>
              <span class="bar-label" title=${row.value}>
                ${onPick
                  ? html`<a href=${onPick(row.value)}>${render ? render(row.value) : row.value}</a>`
                  : render ? render(row.value) : row.value}
              </span>
              <span class="bar-track"><span class="bar-fill" style=${`width:${(100 * row.count) / max}%`}></span></span>
              <span class="bar-count">${number(row.count)}</span>
            </li>`,
          )}
        </ol>`}
  </section>`;
}

/** Counts per time bucket as SVG columns, with the first, middle and last times labelled. */
export function TimeChart({ buckets, title, interval }) {
  const width = 1200;
  const height = 150;
  const pad = 40;
  const max = Math.max(1, ...buckets.map((b) => b.count));
  const step = buckets.length ? (width - pad) / buckets.length : 0;
  const withDate = interval >= 3600 * 6 || buckets.length > 48;
  const ticks = buckets.length ? [0, Math.floor(buckets.length / 2), buckets.length - 1] : [];
  const total = buckets.reduce((sum, b) => sum + b.count, 0);
  return html`<section class="card chart" aria-label=${title}>
    <h3>${title} <small class="muted">(${number(total)})</small></h3>
    <svg viewBox=${`0 0 ${width} ${height + 20}`} role="img" aria-label=${t('chart.summary', { title, total: number(total) })}>
      <line x1=${pad} y1=${height} x2=${width} y2=${height} class="axis" />
      <text x="0" y="12" class="tick">${number(max)}</text>
      ${buckets.map((b, i) => {
        const barHeight = (b.count / max) * (height - 16);
        return html`<rect x=${pad + i * step + 1} y=${height - barHeight} width=${Math.max(1, step - 2)} height=${barHeight} class="column">
          <title>${shortTime(b.start, true)}: ${number(b.count)}</title>
        </rect>`;
      })}
      ${ticks.map(
        (i) => html`<text x=${pad + i * step} y=${height + 16} class="tick">${shortTime(buckets[i].start, withDate)}</text>`,
      )}
    </svg>
  </section>`;
}

export function Pager({ offset, limit, total, onPage }) {
  if (total <= limit && offset === 0) return null;
  const last = Math.min(offset + limit, total);
  return html`<nav class="pager" aria-label=${t('common.pages')}>
    <button type="button" disabled=${offset === 0} onClick=${() => onPage(Math.max(0, offset - limit))}>${t('common.previous')}</button>
    <span>${t('common.range', { from: number(total ? offset + 1 : 0), to: number(last), total: number(total) })}</span>
    <button type="button" disabled=${last >= total} onClick=${() => onPage(offset + limit)}>${t('common.next')}</button>
  </nav>`;
}
