import { useEffect, useState } from 'preact/hooks';
import { ApiError, post } from '../api.js';
import { html } from '../html.js';
import { t } from '../i18n.js';

export function Login({ onLogin, languageSwitch, error }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [message, setMessage] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setMessage('');
    try {
      const result = await post('/auth/login', { username, password });
      await onLogin(result);
    } catch (failure) {
      setMessage(
        failure instanceof ApiError && (failure.status === 401 || failure.status === 400)
          ? t('login.failed')
          : `${t('common.error')}: ${failure.detail || failure.message}`,
      );
      setBusy(false);
    }
  };

  useEffect(() => {
    document.title = `${t('login.title')} · ${t('app.name')}`;
  });
  return html`<main id="main" class="login">
    <form class="card" onSubmit=${submit} aria-labelledby="login-title">
      <div class="login-head">
        <h1 id="login-title">${t('login.title')}</h1>
        ${languageSwitch}
      </div>
      <p class="muted">${t('login.subtitle')}</p>
      ${error && html`<p class="error" role="alert">${t('common.error')}: ${error.detail || error.message}</p>`}
      <label class="field wide"><span>${t('login.username')}</span>
        <input name="username" autocomplete="username" required value=${username} onInput=${(e) => setUsername(e.target.value)} autofocus />
      </label>
      <label class="field wide"><span>${t('login.password')}</span>
        <input name="password" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.target.value)} />
      </label>
      ${message && html`<p class="error" role="alert">${message}</p>`}
      <button type="submit" class="primary" disabled=${busy}>${t('login.submit')}</button>
    </form>
  </main>`;
}
