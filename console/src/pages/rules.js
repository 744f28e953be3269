import { useState } from 'preact/hooks';
import { post, get } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';
import { number } from '../format.js';
import { useData } from '../hooks.js';
import { Empty, ErrorBox, Field, Json, Loading, Severity } from '../components.js';

function RuleTest() {
  const [rule, setRule] = useState('');
  const [event, setEvent] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const run = async (e) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    // A JSON object is an ECS event; anything else is a raw line, normalized as if received.
    let parsed = event.trim();
    if (parsed.startsWith('{')) {
      try {
        parsed = JSON.parse(parsed);
      } catch (failure) {
        setError({ message: t('rules.badEvent', { reason: failure.message }) });
        return;
      }
    }
    try {
      setResult(await post('/rules/test', { rule, event: parsed }));
    } catch (failure) {
      setError(failure);
    }
  };
  return html`<section class="card" aria-labelledby="rule-test-title">
    <h2 id="rule-test-title">${t('rules.test')}</h2>
    <form class="two" onSubmit=${run}>
      <${Field} label=${t('rules.ruleYaml')} wide=${true}>
        <textarea rows="10" class="code" spellcheck="false" required value=${rule} onInput=${(e) => setRule(e.target.value)}></textarea>
      <//>
      <${Field} label=${t('rules.eventInput')} wide=${true}>
        <textarea rows="10" class="code" spellcheck="false" required value=${event} onInput=${(e) => setEvent(e.target.value)}></textarea>
      <//>
      <button type="submit" class="primary">${t('rules.run')}</button>
    </form>
    <${ErrorBox} error=${error} />
    ${result && html`<p class=${result.matched ? 'ok' : 'muted'} role="status">${result.matched ? t('rules.matched') : t('rules.notMatched')}</p>
      ${result.alert ? html`<h3>${t('rules.alert')}</h3><${Json} value=${result.alert} />` : result.event && html`<h3>${t('rules.normalized')}</h3><${Json} value=${result.event} />`}`}
  </section>`;
}

export function Rules({ me }) {
  const { data, error, reload } = useData(() => get('/rules'), []);
  const [filter, setFilter] = useState('');
  const [failure, setFailure] = useState(null);
  const toggle = async (rule) => {
    try {
      await post(`/rules/${encodeURIComponent(rule.id)}/${rule.enabled ? 'disable' : 'enable'}`);
      setFailure(null);
      reload();
    } catch (e) {
      setFailure(e);
    }
  };
  const needle = filter.toLowerCase();
  const shown = (data || []).filter(
    (r) => !needle || `${r.id} ${r.title} ${r.path} ${(r.techniques || []).join(' ')}`.toLowerCase().includes(needle),
  );
  return html`<section>
    <h1>${t('rules.title')}</h1>
    <div class="filters">
      <${Field} label=${t('common.text')}><input type="search" value=${filter} onInput=${(e) => setFilter(e.target.value)} /><//>
      ${data && html`<p class="muted">${t('rules.count', { shown: number(shown.length), total: number(data.length) })}</p>`}
    </div>
    <${ErrorBox} error=${error || failure} />
    ${!data && !error && html`<${Loading} />`}
    ${data && shown.length === 0 && html`<${Empty} />`}
    ${shown.length > 0 && html`<div class="table-wrap"><table class="grid">
      <thead><tr>
        <th scope="col">${t('rules.name')}</th><th scope="col">${t('incident.severity')}</th><th scope="col">${t('rules.status')}</th>
        <th scope="col">${t('rules.hits')}</th><th scope="col">${t('incident.techniques')}</th><th scope="col">${t('rules.enabled')}</th>
      </tr></thead>
      <tbody>${shown.slice(0, 500).map((r) => html`<tr>
        <td><span class="title">${r.title}</span><br /><small class="muted">${r.path || r.id}</small></td>
        <td><${Severity} level=${r.level} /></td>
        <td>${r.status || '—'}</td>
        <td class="num">${number(r.hits)}</td>
        <td>${(r.techniques || []).join(', ')}</td>
        <td>${r.disabled_reason && html`<small class="muted">${r.disabled_reason}</small><br />`}${me.role === 'admin'
          ? html`<button type="button" aria-pressed=${!!r.enabled} onClick=${() => toggle(r)}
              aria-label=${t(r.enabled ? 'rules.disableNamed' : 'rules.enableNamed', { title: r.title })}>${r.enabled ? t('rules.on') : t('rules.off')}</button>`
          : r.enabled ? t('rules.on') : t('rules.off')}</td>
      </tr>`)}</tbody>
    </table></div>`}
    ${me.role !== 'viewer' && html`<${RuleTest} />`}
  </section>`;
}
