import { useEffect, useRef, useState } from 'preact/hooks';
import { get, prefetch } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { dateTime, number, RANGES, rangeStart } from '../format.js';
import { href, navigate } from '../router.js';
import { useData, useKeys } from '../hooks.js';
import { Empty, ErrorBox, Field, Pager, Select, Severity, SEVERITIES, Status, STATUSES } from '../components.js';

const REFRESH_MS = 5000;
const LIMIT = 50;
const COLUMNS = [
  ['severity', 'incident.severity'],
  ['title', 'incident.title'],
  ['agency', 'incident.agency'],
  ['status', 'incident.status'],
  ['alert_count', 'incident.alerts'],
  ['assignee', 'incident.assignee'],
  ['last_seen', 'incident.lastSeen'],
];
// The sorts the API offers (soc/api/incidents.py SORTS).
const SORTABLE = new Set(['severity', 'status', 'alert_count', 'last_seen']);

function queueFilters(params) {
  return {
    status: params.status || '',
    severity: params.severity || '',
    agency: params.agency || '',
    rule: params.rule || '',
    assignee: params.assignee || '',
    range: params.range || '',
    q: params.q || '',
    sort: params.sort || 'last_seen',
    order: params.order || 'desc',
    offset: Number(params.offset || 0),
  };
}

function queueQuery(filters) {
  const { range, ...rest } = filters;
  return { ...rest, start: rangeStart(range), limit: LIMIT };
}

/** Start the queue's requests before the session check answers (the first page most opened). */
export function prefetchQueue(params) {
  prefetch('/incidents', queueQuery(queueFilters(params)));
  prefetch('/agencies');
}

export function Queue({ params, me }) {
  const filters = queueFilters(params);
  const set = (changes) => navigate('/incidents', { ...filters, offset: 0, ...changes }, true);
  const { data, error, at } = useData(() => get('/incidents', queueQuery(filters)), [JSON.stringify(filters)], REFRESH_MS);
  const agencies = useData(() => get('/agencies').catch(() => []), []);
  const items = (data && data.items) || [];
  const [selected, setSelected] = useState(0);
  const body = useRef(null);

  const focusRow = (index) => {
    const row = body.current && body.current.querySelectorAll('tr')[index];
    if (row) row.focus();
  };
  const move = (delta) => {
    if (!items.length) return;
    const next = Math.min(items.length - 1, Math.max(0, selected + delta));
    setSelected(next);
    focusRow(next);
  };
  const open = (index) => items[index] && navigate(`/incidents/${encodeURIComponent(items[index].incident.id)}`);
  useKeys({ j: () => move(1), k: () => move(-1), Enter: () => open(selected) }, [items, selected]);
  useEffect(() => {
    if (selected >= items.length && items.length) setSelected(items.length - 1);
  }, [items.length]);

  const sortBy = (column) =>
    set({ sort: column, order: filters.sort === column && filters.order === 'desc' ? 'asc' : 'desc' });
  const [text, setText] = useState(filters.q);

  return html`<section class="queue">
    <div class="page-head">
      <h1>${t('queue.title')}</h1>
      <p class="muted" aria-live="polite">
        ${data ? t('queue.count', { total: number(data.total) }) : ''}
        ${at ? ` · ${t('queue.updated', { time: dateTime(at.toISOString()) })}` : ''}
      </p>
    </div>
    <form class="filters" role="search" aria-label=${t('queue.filters')} onSubmit=${(e) => { e.preventDefault(); set({ q: text }); }}>
      <${Select} label=${t('incident.status')} value=${filters.status} onChange=${(v) => set({ status: v })}
        options=${STATUSES.map((s) => [s, t(`status.${s}`)])} />
      <${Select} label=${t('incident.severity')} value=${filters.severity} onChange=${(v) => set({ severity: v })}
        options=${SEVERITIES.map((s) => [s, t(`severity.${s}`)])} />
      ${(!me.agencies || me.agencies.length !== 1) && html`<${Select} label=${t('incident.agency')} value=${filters.agency}
        onChange=${(v) => set({ agency: v })}
        options=${((agencies.data || []).length ? agencies.data : (me.agencies || []).map((id) => ({ id })))
          .map((a) => [a.id, a.name || a.id])} />`}
      <${Field} label=${t('queue.ruleId')}>
        <input value=${filters.rule} onChange=${(e) => set({ rule: e.target.value })} />
      <//>
      <${Field} label=${t('incident.assignee')}>
        <input value=${filters.assignee} onChange=${(e) => set({ assignee: e.target.value })} />
      <//>
      <${Select} label=${t('common.timeRange')} value=${filters.range} onChange=${(v) => set({ range: v })}
        options=${Object.keys(RANGES).map((r) => [r, t(`range.${r}`)])} />
      <${Field} label=${t('common.text')}>
        <input type="search" value=${text} onInput=${(e) => setText(e.target.value)} />
      <//>
      <button type="submit">${t('common.apply')}</button>
      ${filters.assignee !== me.username &&
      html`<button type="button" class="link" onClick=${() => set({ assignee: me.username })}>${t('queue.mine')}</button>`}
    </form>
    <p class="hint muted">${t('queue.keys')}</p>
    <${ErrorBox} error=${error} />
    ${data && items.length === 0 && html`<${Empty}>${t('queue.none')}<//>`}
    ${items.length > 0 &&
    html`<div class="table-wrap"><table class="grid">
      <caption class="sr-only">${t('queue.title')}</caption>
      <thead><tr>
        ${COLUMNS.map(([column, key]) => {
          const sorted = filters.sort === column;
          const aria = sorted ? (filters.order === 'asc' ? 'ascending' : 'descending') : undefined;
          return html`<th scope="col" aria-sort=${aria}>
            ${SORTABLE.has(column)
              ? html`<button type="button" class="sort" onClick=${() => sortBy(column)}>${t(key)}${sorted ? (filters.order === 'asc' ? ' ▲' : ' ▼') : ''}</button>`
              : t(key)}
          </th>`;
        })}
      </tr></thead>
      <tbody ref=${body}>
        ${items.map((doc, index) => {
          const inc = doc.incident;
          return html`<tr tabindex="-1" class=${index === selected ? 'selected' : ''} aria-selected=${index === selected}
            onClick=${() => setSelected(index)} onDblClick=${() => open(index)} data-testid="incident-row">
            <td><${Severity} level=${inc.severity} /></td>
            <td><a href=${href(`/incidents/${encodeURIComponent(inc.id)}`)}>${inc.title}</a></td>
            <td>${(doc.organization && doc.organization.id) || '—'}</td>
            <td><${Status} status=${inc.status} /></td>
            <td class="num">${number(inc.alert_count)}</td>
            <td>${inc.assignee || '—'}</td>
            <td><time datetime=${inc.last_seen}>${dateTime(inc.last_seen)}</time></td>
          </tr>`;
        })}
      </tbody>
    </table></div>`}
    ${data && html`<${Pager} offset=${filters.offset} limit=${LIMIT} total=${data.total} onPage=${(offset) => set({ offset })} />`}
  </section>`;
}
