import { useEffect, useState } from 'preact/hooks';
import { ApiError, apiUrl, get, patch, post } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { dateTime, duration, number } from '../format.js';
import { href } from '../router.js';
import { useData } from '../hooks.js';
import { Empty, ErrorBox, Json, Loading, Severity, Status } from '../components.js';

const OPEN = ['new', 'acknowledged', 'investigating'];
const REFRESH_MS = 10000;

/** The actions the lifecycle allows from a status, each with the change it sends. */
function actions(status) {
  if (!OPEN.includes(status)) return [['reopen', { reopen: true }]];
  const list = [];
  if (status === 'new') list.push(['acknowledge', { status: 'acknowledged' }]);
  if (status !== 'investigating') list.push(['investigate', { status: 'investigating' }]);
  list.push(['resolve', { status: 'resolved' }], ['falsePositive', { status: 'false_positive' }]);
  return list;
}

function Facts({ doc }) {
  const inc = doc.incident;
  const rows = [
    ['incident.status', html`<${Status} status=${inc.status} />`],
    ['incident.severity', html`<${Severity} level=${inc.severity} />`],
    ['incident.agency', (doc.organization && doc.organization.id) || '—'],
    ['incident.rule', inc.rule ? `${inc.rule.name} (${inc.rule.level})` : '—'],
    ['incident.details', inc.last_message || '—'],
    ['incident.alerts', number(inc.alert_count)],
    ['incident.assignee', inc.assignee || '—'],
    ['incident.firstSeen', dateTime(inc.first_seen)],
    ['incident.lastSeen', dateTime(inc.last_seen)],
    ['incident.created', dateTime(inc.created)],
    ['incident.tta', duration(inc.tta_seconds)],
    ['incident.ttr', duration(inc.ttr_seconds)],
    ['incident.hosts', ((doc.related && doc.related.hosts) || []).join(', ') || '—'],
    ['incident.users', ((doc.related && doc.related.user) || []).join(', ') || '—'],
    ['incident.ips', ((doc.related && doc.related.ip) || []).join(', ') || '—'],
    ['incident.tags', (inc.tags || []).join(', ') || '—'],
  ];
  return html`<dl class="facts">${rows.map(([key, value]) => html`<div><dt>${t(key)}</dt><dd>${value}</dd></div>`)}</dl>`;
}

function Techniques({ doc }) {
  const ids = (doc.threat && doc.threat.technique && doc.threat.technique.id) || [];
  return html`<section class="card" aria-labelledby="techniques-title">
    <h2 id="techniques-title">${t('incident.techniques')}</h2>
    ${ids.length ? html`<ul class="chips">${ids.map((id) => html`<li class="chip">${id}</li>`)}</ul>` : html`<${Empty} />`}
  </section>`;
}

function Actions({ doc, onChange, me }) {
  const inc = doc.incident;
  const [assignee, setAssignee] = useState(inc.assignee || '');
  const [tags, setTags] = useState((inc.tags || []).join(', '));
  const [message, setMessage] = useState(null);
  const [busy, setBusy] = useState(false);
  const readOnly = me.role === 'viewer';
  useEffect(() => {
    setAssignee(inc.assignee || '');
    setTags((inc.tags || []).join(', '));
  }, [inc.version]);

  const change = async (body, done) => {
    setBusy(true);
    setMessage(null);
    try {
      const updated = await patch(`/incidents/${encodeURIComponent(inc.id)}`, { version: inc.version, ...body });
      setMessage({ ok: true, text: t(done) });
      onChange(updated);
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        setMessage({ ok: false, text: t('incident.conflict') });
        onChange(null);
      } else {
        setMessage({ ok: false, text: `${t('common.error')}: ${error.detail || error.message}` });
      }
    } finally {
      setBusy(false);
    }
  };

  if (readOnly) return null;
  return html`<section class="card actions" aria-labelledby="actions-title">
    <h2 id="actions-title">${t('incident.actions')}</h2>
    <div class="buttons">
      ${actions(inc.status).map(
        ([name, body]) => html`<button type="button" class=${name === 'acknowledge' || name === 'resolve' ? 'primary' : ''}
          disabled=${busy} data-action=${name} onClick=${() => change(body, `incident.done.${name}`)}>${t(`incident.action.${name}`)}</button>`,
      )}
    </div>
    <form class="inline" onSubmit=${(e) => { e.preventDefault(); change({ assignee: assignee.trim() || null }, 'incident.done.assign'); }}>
      <label class="field"><span>${t('incident.assignee')}</span>
        <input value=${assignee} onInput=${(e) => setAssignee(e.target.value)} data-testid="assignee" />
      </label>
      <button type="submit" disabled=${busy}>${t('incident.action.assign')}</button>
      <button type="button" class="link" disabled=${busy} onClick=${() => { setAssignee(me.username); change({ assignee: me.username }, 'incident.done.assign'); }}>${t('incident.action.assignMe')}</button>
    </form>
    <form class="inline" onSubmit=${(e) => {
      e.preventDefault();
      change({ tags: tags.split(',').map((s) => s.trim()).filter(Boolean) }, 'incident.done.tags');
    }}>
      <label class="field"><span>${t('incident.tags')}</span>
        <input value=${tags} onInput=${(e) => setTags(e.target.value)} />
      </label>
      <button type="submit" disabled=${busy}>${t('common.save')}</button>
    </form>
    ${message && html`<p class=${message.ok ? 'ok' : 'error'} role=${message.ok ? 'status' : 'alert'}>${message.text}</p>`}
  </section>`;
}

function Comments({ doc, onChange, me }) {
  const inc = doc.incident;
  const [text, setText] = useState('');
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    if (!text.trim()) return;
    try {
      const result = await post(`/incidents/${encodeURIComponent(inc.id)}/comments`, { text });
      setText('');
      setError(null);
      const updated = result && result.incident;
      onChange(updated && updated.incident ? updated : null);
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section class="card" aria-labelledby="comments-title">
    <h2 id="comments-title">${t('incident.comments')}</h2>
    ${(inc.comments || []).length === 0 && html`<${Empty} />`}
    <ol class="comments">
      ${(inc.comments || []).map(
        (c) => html`<li><p class="meta"><strong>${c.author}</strong> · <time datetime=${c.at}>${dateTime(c.at)}</time></p><p class="text">${c.text}</p></li>`,
      )}
    </ol>
    ${me.role !== 'viewer' &&
    html`<form onSubmit=${submit}>
      <label class="field wide"><span>${t('incident.newComment')}</span>
        <textarea rows="3" value=${text} onInput=${(e) => setText(e.target.value)} data-testid="comment"></textarea>
      </label>
      <button type="submit">${t('incident.action.comment')}</button>
      <${ErrorBox} error=${error} />
    </form>`}
  </section>`;
}

// An alert's rule, and what its details say happened when the rule has them (the message).
function alertSummary(doc) {
  const rule = doc.rule && doc.rule.name;
  if (rule && doc.message && doc.message !== rule) return `${rule} — ${doc.message}`;
  return rule || doc.message;
}

function Timeline({ id, count }) {
  const { data, error } = useData(() => get(`/incidents/${encodeURIComponent(id)}/timeline`), [id, count]);
  if (error) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<${Loading} />`;
  const entries = [
    ...(data.alerts || []).map((doc) => ({ type: 'alert', doc })),
    ...(data.events || []).map((doc) => ({ type: 'event', doc })),
  ].sort((a, b) => String(a.doc['@timestamp']).localeCompare(String(b.doc['@timestamp'])));
  return html`<section class="card" aria-labelledby="timeline-title">
    <h2 id="timeline-title">${t('incident.timeline')}</h2>
    ${entries.length === 0 && html`<${Empty} />`}
    <ol class="timeline">
      ${entries.map(({ type, doc }) => {
        const summary = type === 'alert' ? alertSummary(doc) : doc.message || (doc.event && doc.event.action);
        return html`<li class=${`entry ${type}`}>
          <details>
            <summary>
              <time datetime=${doc['@timestamp']}>${dateTime(doc['@timestamp'])}</time>
              <span class="badge kind-${type}">${t(`kind.${type}`)}</span>
              ${type === 'alert' && html`<${Severity} level=${doc.event && doc.event.severity} />`}
              <span>${summary}</span>
              <span class="muted">${(doc.host && doc.host.name) || ''}</span>
            </summary>
            ${doc.event && doc.event.original && html`<h3>${t('incident.raw')}</h3><pre class="raw" tabindex="0">${doc.event.original}</pre>`}
            <h3>${t('incident.document')}</h3>
            <${Json} value=${doc} />
          </details>
        </li>`;
      })}
    </ol>
  </section>`;
}

function Audit({ id, version }) {
  const { data, error } = useData(() => get(`/incidents/${encodeURIComponent(id)}/audit`), [id, version]);
  const rows = Array.isArray(data) ? data : (data && data.items) || [];
  return html`<section class="card" aria-labelledby="audit-title">
    <h2 id="audit-title">${t('incident.audit')}</h2>
    <${ErrorBox} error=${error} />
    ${data && rows.length === 0 && html`<${Empty} />`}
    ${rows.length > 0 &&
    html`<div class="table-wrap"><table class="grid compact">
      <thead><tr><th scope="col">${t('audit.at')}</th><th scope="col">${t('audit.actor')}</th><th scope="col">${t('audit.action')}</th><th scope="col">${t('audit.detail')}</th></tr></thead>
      <tbody>${rows.map((row) => html`<tr>
        <td>${dateTime(row['@timestamp'])}</td>
        <td>${(row.user && row.user.name) || '—'}</td>
        <td>${(row.event && row.event.action) || '—'}</td>
        <td><code>${JSON.stringify((row.audit && row.audit.changes) || {})}</code></td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

export function Incident({ ident, me }) {
  // Refreshed while open: new alerts grow the incident, colleagues change it.
  const { data, error, reload, setData } = useData(() => get(`/incidents/${encodeURIComponent(ident)}`), [ident], REFRESH_MS);
  const onChange = (updated) => (updated ? setData(updated) : reload());
  if (error && !data) return html`<${ErrorBox} error=${error} />`;
  if (!data) return html`<${Loading} />`;
  const current = data;
  const inc = current.incident;
  return html`<article class="incident">
    <p><a href=${href('/incidents')}>← ${t('incident.back')}</a></p>
    <div class="page-head">
      <h1>${inc.title}</h1>
      <p class="exports">
        ${t('incident.export')}:
        <a href=${apiUrl(`/incidents/${encodeURIComponent(inc.id)}/export`, { format: 'csv' })} download>CSV</a>
        <a href=${apiUrl(`/incidents/${encodeURIComponent(inc.id)}/export`, { format: 'stix' })} download>STIX 2.1</a>
      </p>
    </div>
    <div class="columns">
      <div>
        <section class="card" aria-label=${t('incident.summary')}><${Facts} doc=${current} /></section>
        <${Actions} doc=${current} me=${me} onChange=${onChange} />
        <${Techniques} doc=${current} />
        <${Comments} doc=${current} me=${me} onChange=${onChange} />
      </div>
      <div>
        <${Timeline} id=${inc.id} count=${inc.alert_count} />
        <${Audit} id=${inc.id} version=${inc.version} />
      </div>
    </div>
  </article>`;
}
