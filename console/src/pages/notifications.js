import { useState } from 'preact/hooks';
import { get, post } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { dateTime, number } from '../format.js';
import { useData } from '../hooks.js';
import { Empty, ErrorBox, Loading, Pager } from '../components.js';

const REFRESH_MS = 10000;
const LIMIT = 50;
const RETRYABLE = new Set(['parked']);

function items(data) {
  return Array.isArray(data) ? data : (data && data.items) || [];
}

function text(value) {
  if (value === null || value === undefined || value === '') return '—';
  // The outbox keeps times as Unix seconds.
  if (typeof value === 'number' && value > 1e9) return dateTime(new Date(value * 1000).toISOString());
  if (typeof value === 'object') return JSON.stringify(value);
  if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}T/.test(value)) return dateTime(value);
  return String(value);
}

export function Notifications({ me }) {
  const [offset, setOffset] = useState(0);
  const channels = useData(() => get('/notifications/channels'), []);
  const deliveries = useData(() => get('/notifications/deliveries', { offset, limit: LIMIT }), [offset], REFRESH_MS);
  const [failure, setFailure] = useState(null);
  const retry = async (id) => {
    try {
      await post(`/notifications/deliveries/${encodeURIComponent(id)}/retry`);
      setFailure(null);
      deliveries.reload();
    } catch (error) {
      setFailure(error);
    }
  };
  const rows = items(deliveries.data);
  const total = deliveries.data && deliveries.data.total !== undefined ? deliveries.data.total : rows.length;
  return html`<section>
    <h1>${t('notify.title')}</h1>
    <section class="card" aria-labelledby="channels-title">
      <h2 id="channels-title">${t('notify.channels')}</h2>
      <${ErrorBox} error=${channels.error} />
      ${!channels.data && !channels.error && html`<${Loading} />`}
      ${channels.data && items(channels.data).length === 0 && html`<${Empty} />`}
      ${items(channels.data).length > 0 && html`<div class="table-wrap"><table class="grid compact">
        <thead><tr><th scope="col">${t('notify.channel')}</th><th scope="col">${t('notify.type')}</th>
          <th scope="col">${t('notify.address')}</th><th scope="col">${t('notify.messages')}</th></tr></thead>
        <tbody>${items(channels.data).map((c) => html`<tr>
          <td>${c.name}</td><td>${c.type}</td><td><code>${c.base_url || '—'}</code></td>
          <td>${Object.entries(c.messages || {}).map(([state, count]) => `${state}: ${number(count)}`).join(' · ') || '—'}</td>
        </tr>`)}</tbody>
      </table></div>`}
    </section>
    <section class="card" aria-labelledby="deliveries-title">
      <h2 id="deliveries-title">${t('notify.deliveries')}</h2>
      <${ErrorBox} error=${deliveries.error || failure} />
      ${deliveries.data && rows.length === 0 && html`<${Empty} />`}
      ${rows.length > 0 && html`<div class="table-wrap"><table class="grid compact">
        <thead><tr>
          <th scope="col">${t('notify.created')}</th><th scope="col">${t('notify.incident')}</th>
          <th scope="col">${t('notify.channel')}</th><th scope="col">${t('notify.recipient')}</th>
          <th scope="col">${t('notify.state')}</th><th scope="col">${t('notify.attempts')}</th>
          <th scope="col">${t('notify.lastError')}</th><th scope="col"><span class="sr-only">${t('notify.retry')}</span></th>
        </tr></thead>
        <tbody>${rows.map((d) => html`<tr>
          <td>${text(d.created)}</td>
          <td>${d.incident_id ? html`<a href=${`#/incidents/${encodeURIComponent(d.incident_id)}`}>${d.incident_id}</a>` : '—'}</td>
          <td>${text(d.channel)}</td><td>${text(d.recipient)}</td>
          <td>${t(`notify.status.${d.status}`)}</td><td class="num">${number(d.attempts || 0)}</td>
          <td>${text(d.last_error)}</td>
          <td>${me.role === 'admin' && RETRYABLE.has(d.status) &&
            html`<button type="button" onClick=${() => retry(d.id)}>${t('notify.retry')}</button>`}</td>
        </tr>`)}</tbody>
      </table></div>`}
      <${Pager} offset=${offset} limit=${LIMIT} total=${total} onPage=${setOffset} />
    </section>
  </section>`;
}
