import { useState } from 'preact/hooks';
import { del, get, patch, post } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { dateTime, number } from '../format.js';
import { navigate } from '../router.js';
import { useData } from '../hooks.js';
import { Empty, ErrorBox, Field, Loading, Pager } from '../components.js';

const ROLES = ['admin', 'analyst', 'viewer'];

function list(data) {
  return Array.isArray(data) ? data : (data && data.items) || [];
}

function agencyList(text) {
  const ids = text.split(',').map((s) => s.trim()).filter(Boolean);
  return ids.length ? ids : null;
}

function useForm(initial) {
  const [values, setValues] = useState(initial);
  const bind = (name) => ({ value: values[name], onInput: (e) => setValues({ ...values, [name]: e.target.value }) });
  return [values, bind, () => setValues(initial)];
}

function Users() {
  const users = useData(() => get('/users'), []);
  const [values, bind, reset] = useForm({ username: '', display_name: '', password: '', role: 'analyst', agencies: '' });
  const [error, setError] = useState(null);
  const [done, setDone] = useState('');
  const create = async (e) => {
    e.preventDefault();
    try {
      await post('/users', { ...values, agencies: agencyList(values.agencies) });
      setDone(t('admin.created', { name: values.username }));
      setError(null);
      reset();
      users.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const update = async (user, body) => {
    try {
      await patch(`/users/${encodeURIComponent(user.username)}`, body);
      setError(null);
      users.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section class="card" aria-labelledby="users-title">
    <h2 id="users-title">${t('admin.users')}</h2>
    <${ErrorBox} error=${users.error || error} />
    ${!users.data && !users.error && html`<${Loading} />`}
    ${list(users.data).length > 0 && html`<div class="table-wrap"><table class="grid compact">
      <thead><tr><th scope="col">${t('login.username')}</th><th scope="col">${t('admin.displayName')}</th>
        <th scope="col">${t('admin.role')}</th><th scope="col">${t('admin.agencies')}</th><th scope="col">${t('admin.state')}</th></tr></thead>
      <tbody>${list(users.data).map((u) => html`<tr>
        <td>${u.username}</td><td>${u.display_name || '—'}</td>
        <td><label><span class="sr-only">${t('admin.roleOf', { name: u.username })}</span>
          <select value=${u.role} onChange=${(e) => update(u, { role: e.target.value })}>
            ${ROLES.map((r) => html`<option value=${r}>${t(`role.${r}`)}</option>`)}
          </select></label></td>
        <td>${u.agencies ? u.agencies.join(', ') : t('admin.allAgencies')}</td>
        <td><button type="button" onClick=${() => update(u, { disabled: !u.disabled })}>
          ${u.disabled ? t('admin.enable') : t('admin.disable')}</button></td>
      </tr>`)}</tbody>
    </table></div>`}
    <h3>${t('admin.newUser')}</h3>
    <form class="filters" onSubmit=${create}>
      <${Field} label=${t('login.username')}><input required autocomplete="off" ...${bind('username')} /><//>
      <${Field} label=${t('admin.displayName')}><input ...${bind('display_name')} /><//>
      <${Field} label=${t('login.password')}><input type="password" required autocomplete="new-password" minlength="12" ...${bind('password')} /><//>
      <${Field} label=${t('admin.role')}>
        <select ...${bind('role')} onChange=${bind('role').onInput}>${ROLES.map((r) => html`<option value=${r}>${t(`role.${r}`)}</option>`)}</select>
      <//>
      <${Field} label=${t('admin.agenciesHint')}><input ...${bind('agencies')} /><//>
      <button type="submit" class="primary">${t('admin.create')}</button>
    </form>
    ${done && html`<p class="ok" role="status">${done}</p>`}
  </section>`;
}

function Agencies() {
  const agencies = useData(() => get('/agencies'), []);
  const [values, bind, reset] = useForm({ id: '', name: '' });
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    try {
      await post('/agencies', values);
      setError(null);
      reset();
      agencies.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section class="card" aria-labelledby="agencies-title">
    <h2 id="agencies-title">${t('admin.agencies')}</h2>
    <${ErrorBox} error=${agencies.error || error} />
    ${agencies.data && list(agencies.data).length === 0 && html`<${Empty} />`}
    <ul class="chips">${list(agencies.data).map((a) => html`<li class="chip"><strong>${a.id}</strong> ${a.name || ''}</li>`)}</ul>
    <form class="filters" onSubmit=${create}>
      <${Field} label=${t('admin.agencyId')}><input required ...${bind('id')} /><//>
      <${Field} label=${t('admin.agencyName')}><input required ...${bind('name')} /><//>
      <button type="submit" class="primary">${t('admin.create')}</button>
    </form>
  </section>`;
}

function ApiKeys() {
  const keys = useData(() => get('/apikeys'), []);
  const [values, bind, reset] = useForm({ name: '', role: 'viewer', agencies: '' });
  const [secret, setSecret] = useState('');
  const [error, setError] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    try {
      const created = await post('/apikeys', { ...values, agencies: agencyList(values.agencies) });
      setSecret(created.token || created.key || created.secret || '');
      setError(null);
      reset();
      keys.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  const revoke = async (key) => {
    if (!confirm(t('admin.revokeConfirm', { name: key.name || key.id }))) return;
    try {
      await del(`/apikeys/${encodeURIComponent(key.id)}`);
      keys.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section class="card" aria-labelledby="keys-title">
    <h2 id="keys-title">${t('admin.apikeys')}</h2>
    <${ErrorBox} error=${keys.error || error} />
    ${keys.data && list(keys.data).length === 0 && html`<${Empty} />`}
    ${list(keys.data).length > 0 && html`<div class="table-wrap"><table class="grid compact">
      <thead><tr><th scope="col">${t('admin.keyName')}</th><th scope="col">${t('admin.role')}</th><th scope="col">${t('admin.agencies')}</th>
        <th scope="col">${t('notify.created')}</th><th scope="col"><span class="sr-only">${t('admin.revoke')}</span></th></tr></thead>
      <tbody>${list(keys.data).map((k) => html`<tr>
        <td>${k.name || k.id}</td><td>${k.role ? t(`role.${k.role}`) : '—'}</td>
        <td>${k.agencies ? k.agencies.join(', ') : t('admin.allAgencies')}</td><td>${dateTime(k.created)}</td>
        <td><button type="button" onClick=${() => revoke(k)}>${t('admin.revoke')}</button></td>
      </tr>`)}</tbody>
    </table></div>`}
    <form class="filters" onSubmit=${create}>
      <${Field} label=${t('admin.keyName')}><input required ...${bind('name')} /><//>
      <${Field} label=${t('admin.role')}>
        <select ...${bind('role')} onChange=${bind('role').onInput}>${ROLES.map((r) => html`<option value=${r}>${t(`role.${r}`)}</option>`)}</select>
      <//>
      <${Field} label=${t('admin.agenciesHint')}><input ...${bind('agencies')} /><//>
      <button type="submit" class="primary">${t('admin.create')}</button>
    </form>
    ${secret && html`<p class="ok" role="status">${t('admin.secretOnce')} <code class="secret">${secret}</code></p>`}
  </section>`;
}

function Sources() {
  const sources = useData(() => get('/sources'), []);
  return html`<section class="card" aria-labelledby="admin-sources-title">
    <h2 id="admin-sources-title">${t('admin.sources')}</h2>
    <p class="muted">${t('admin.sourcesHint')}</p>
    <${ErrorBox} error=${sources.error} />
    ${sources.data && list(sources.data).length === 0 && html`<${Empty} />`}
    ${list(sources.data).length > 0 && html`<div class="table-wrap"><table class="grid compact">
      <thead><tr><th scope="col">${t('source.id')}</th><th scope="col">${t('incident.agency')}</th>
        <th scope="col">${t('source.lastSeen')}</th><th scope="col">${t('source.lastHour')}</th></tr></thead>
      <tbody>${list(sources.data).map((s) => html`<tr><td>${s.id}</td><td>${s.agency || '—'}</td>
        <td>${dateTime(s.last_seen)}</td><td class="num">${number(s.events_last_hour)}</td></tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

function AuditLog() {
  const [offset, setOffset] = useState(0);
  const log = useData(() => get('/audit', { offset, limit: 50 }), [offset]);
  const rows = list(log.data);
  return html`<section class="card" aria-labelledby="admin-audit-title">
    <h2 id="admin-audit-title">${t('admin.audit')}</h2>
    <${ErrorBox} error=${log.error} />
    ${log.data && rows.length === 0 && html`<${Empty} />`}
    ${rows.length > 0 && html`<div class="table-wrap"><table class="grid compact">
      <thead><tr><th scope="col">${t('audit.at')}</th><th scope="col">${t('audit.actor')}</th><th scope="col">${t('audit.action')}</th>
        <th scope="col">${t('audit.object')}</th><th scope="col">${t('audit.detail')}</th></tr></thead>
      <tbody>${rows.map((row) => html`<tr>
        <td>${dateTime(row['@timestamp'])}</td><td>${(row.user && row.user.name) || '—'}</td>
        <td>${(row.event && row.event.action) || '—'}</td>
        <td>${row.audit && row.audit.object ? `${row.audit.object.type} ${row.audit.object.id}` : '—'}</td>
        <td><code>${JSON.stringify((row.audit && row.audit.changes) || {})}</code></td>
      </tr>`)}</tbody>
    </table></div>`}
    ${log.data && html`<${Pager} offset=${offset} limit=${50} total=${log.data.total || rows.length} onPage=${setOffset} />`}
  </section>`;
}

const TABS = { users: Users, agencies: Agencies, apikeys: ApiKeys, sources: Sources, audit: AuditLog };

export function Admin({ params, me }) {
  if (me.role !== 'admin') return html`<p class="error" role="alert">${t('admin.forbidden')}</p>`;
  const tab = TABS[params.tab] ? params.tab : 'users';
  const Tab = TABS[tab];
  return html`<section>
    <h1>${t('admin.title')}</h1>
    <div class="tabs" role="tablist" aria-label=${t('admin.title')}>
      ${Object.keys(TABS).map((name) => html`<button type="button" role="tab" aria-selected=${tab === name}
        class=${tab === name ? 'tab active' : 'tab'} onClick=${() => navigate('/admin', { tab: name })}>${t(`admin.${name}`)}</button>`)}
    </div>
    <div role="tabpanel"><${Tab} key=${tab} /></div>
  </section>`;
}
