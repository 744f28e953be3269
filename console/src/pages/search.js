import { useState } from 'preact/hooks';
import { get, post } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { dateTime, isoToZonedInput, number, RANGES, rangeStart, zonedInputToIso } from '../format.js';
import { navigate } from '../router.js';
import { useData } from '../hooks.js';
import { Empty, ErrorBox, Field, Json, Pager, Select, Severity } from '../components.js';

const LIMIT = 50;

function timeBounds(params) {
  if (params.range === 'custom') return { start: params.start || '', end: params.end || '' };
  return { start: rangeStart(params.range || '24h'), end: '' };
}

function Results({ kind, items }) {
  return html`<div class="table-wrap"><table class="grid">
    <thead><tr>
      <th scope="col">${t('search.time')}</th>
      ${kind === 'alerts' && html`<th scope="col">${t('incident.severity')}</th>`}
      <th scope="col">${t('search.host')}</th>
      <th scope="col">${t('incident.agency')}</th>
      <th scope="col">${kind === 'alerts' ? t('incident.rule') : t('search.message')}</th>
    </tr></thead>
    <tbody>
      ${items.map(
        (doc) => html`<tr>
          <td><time datetime=${doc['@timestamp']}>${dateTime(doc['@timestamp'])}</time></td>
          ${kind === 'alerts' && html`<td><${Severity} level=${doc.event && doc.event.severity} /></td>`}
          <td>${(doc.host && doc.host.name) || '—'}</td>
          <td>${(doc.organization && doc.organization.id) || '—'}</td>
          <td>
            <details>
              <summary>${kind === 'alerts' ? (doc.rule && doc.rule.name) || doc.message : doc.message || (doc.event && doc.event.original) || '—'}</summary>
              <${Json} value=${doc} />
            </details>
          </td>
        </tr>`,
      )}
    </tbody>
  </table></div>`;
}

function TimeRange({ params, set }) {
  const range = params.range || '24h';
  return html`
    <${Select} label=${t('common.timeRange')} value=${range} all=${false} onChange=${(v) => set({ range: v })}
      options=${[...Object.keys(RANGES).map((r) => [r, t(`range.${r}`)]), ['all', t('range.all')], ['custom', t('range.custom')]]} />
    ${range === 'custom' && html`
      <${Field} label=${t('common.from')}>
        <input type="datetime-local" value=${isoToZonedInput(params.start)} onChange=${(e) => set({ start: zonedInputToIso(e.target.value) })} />
      <//>
      <${Field} label=${t('common.to')}>
        <input type="datetime-local" value=${isoToZonedInput(params.end)} onChange=${(e) => set({ end: zonedInputToIso(e.target.value) })} />
      <//>`}`;
}

function DocumentSearch({ params, set }) {
  const kind = params.kind === 'events' ? 'events' : 'alerts';
  const offset = Number(params.offset || 0);
  const filters = (params.filter || '').split('\n').map((s) => s.trim()).filter(Boolean);
  const [text, setText] = useState(params.q || '');
  const [filterText, setFilterText] = useState(params.filter || '');
  const { data, error, loading } = useData(
    () => get(`/${kind}`, { q: params.q, filter: filters, ...timeBounds(params), offset, limit: LIMIT }),
    [kind, params.q, params.filter, params.range, params.start, params.end, offset],
  );
  return html`
    <form class="filters" role="search" onSubmit=${(e) => { e.preventDefault(); set({ q: text, filter: filterText }); }}>
      <${Field} label=${t('common.text')} wide=${true}>
        <input type="search" value=${text} onInput=${(e) => setText(e.target.value)} data-testid="search-text" />
      <//>
      <${Field} label=${t('search.filters')}>
        <textarea rows="2" placeholder="host.name:web01" value=${filterText} onInput=${(e) => setFilterText(e.target.value)}></textarea>
      <//>
      <${TimeRange} params=${params} set=${set} />
      <button type="submit" class="primary">${t('search.submit')}</button>
    </form>
    <${ErrorBox} error=${error} />
    <p class="muted" aria-live="polite">${loading ? t('common.loading') : data ? t('search.total', { total: number(data.total) }) : ''}</p>
    ${data && data.items.length === 0 && html`<${Empty} />`}
    ${data && data.items.length > 0 && html`<${Results} kind=${kind} items=${data.items} />`}
    ${data && html`<${Pager} offset=${offset} limit=${LIMIT} total=${data.total} onPage=${(o) => set({ offset: o }, true)} />`}`;
}

function Hunt({ params, set }) {
  const [rule, setRule] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const bounds = Object.fromEntries(Object.entries(timeBounds(params)).filter(([, v]) => v));
      setResult(await post('/hunt', { rule, ...bounds }));
    } catch (failure) {
      setError(failure);
      setResult(null);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <form class="stack" onSubmit=${run}>
      <${Field} label=${t('hunt.rule')} wide=${true}>
        <textarea rows="12" class="code" spellcheck="false" required value=${rule} onInput=${(e) => setRule(e.target.value)}
          placeholder=${'title: ...\nlogsource:\n  product: linux\ndetection:\n  selection:\n    ...\n  condition: selection'}></textarea>
      <//>
      <div class="filters"><${TimeRange} params=${params} set=${set} /></div>
      <button type="submit" class="primary" disabled=${busy}>${t('hunt.submit')}</button>
    </form>
    <${ErrorBox} error=${error} />
    ${result && html`
      ${result.query && html`<h2>${t('hunt.query')}</h2>
        <pre class="raw" tabindex="0">${typeof result.query === 'string' ? result.query : JSON.stringify(result.query, null, 2)}</pre>`}
      <p class="muted" role="status">
        ${result.rule ? `${result.rule.title} · ` : ''}${t('hunt.scanned', { scanned: number(result.scanned || 0), total: number(result.total) })}
        ${result.complete === false ? ` · ${t('hunt.partial')}` : ''}
      </p>
      ${result.items.length ? html`<${Results} kind="events" items=${result.items} />` : html`<${Empty} />`}`}`;
}

export function Search({ params }) {
  const tab = params.kind === 'events' || params.kind === 'hunt' ? params.kind : 'alerts';
  const set = (changes, keepOffset) => navigate('/search', { ...params, ...(keepOffset ? {} : { offset: 0 }), ...changes }, true);
  return html`<section>
    <h1>${t('search.title')}</h1>
    <div class="tabs" role="tablist" aria-label=${t('search.title')}>
      ${['alerts', 'events', 'hunt'].map(
        (name) => html`<button type="button" role="tab" aria-selected=${tab === name} class=${tab === name ? 'tab active' : 'tab'}
          onClick=${() => navigate('/search', { kind: name, range: params.range })}>${t(`search.tab.${name}`)}</button>`,
      )}
    </div>
    <div role="tabpanel">
      ${tab === 'hunt' ? html`<${Hunt} params=${params} set=${set} />` : html`<${DocumentSearch} params=${{ ...params, kind: tab }} set=${set} key=${tab} />`}
    </div>
  </section>`;
}
