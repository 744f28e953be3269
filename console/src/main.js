import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import './style.css';
import { ApiError, get, hasSession, onUnauthorized, post, probe, setCsrf } from './api.js';
import { html } from './html.js';
import { LANGUAGES, saveLanguage, savedLanguage, setLanguage, t } from './i18n.js';
import { DEFAULT_TIMEZONE, setTimeZone } from './format.js';
import { href, parseHash, useRoute } from './router.js';
import { Loading } from './components.js';
import { Login } from './pages/login.js';
import { prefetchQueue, Queue } from './pages/queue.js';
import { Incident } from './pages/incident.js';
import { Search } from './pages/search.js';
import { Dashboard, prefetchDashboard } from './pages/dashboard.js';
import { Rules } from './pages/rules.js';
import { Notifications } from './pages/notifications.js';
import { Admin } from './pages/admin.js';

const PAGES = [
  ['/incidents', 'nav.incidents', Queue],
  ['/dashboard', 'nav.dashboard', Dashboard],
  ['/search', 'nav.search', Search],
  ['/rules', 'nav.rules', Rules],
  ['/notifications', 'nav.notifications', Notifications, 'notifications'],
  ['/admin', 'nav.admin', Admin, 'admin'],
];

function page(path) {
  if (path.startsWith('/incidents/')) return [Incident, decodeURIComponent(path.slice('/incidents/'.length))];
  const found = PAGES.find(([p]) => p === path);
  return found ? [found[2], null] : [null, null];
}

function LanguageSwitch({ lang, onChange }) {
  return html`<label class="lang">
    <span class="sr-only">${t('nav.language')}</span>
    <select value=${lang} onChange=${(e) => onChange(e.target.value)} data-testid="language">
      ${Object.keys(LANGUAGES).map((code) => html`<option value=${code}>${LANGUAGES[code]['language.name']}</option>`)}
    </select>
  </label>`;
}

function Shell({ me, lang, onLanguage, onLogout, features }) {
  const route = useRoute();
  const [Page, ident] = page(route.path);
  const visible = PAGES.filter(([, , , need]) => {
    if (need === 'admin') return me.role === 'admin';
    if (need === 'notifications') return features.notifications;
    return true;
  });
  // After a route change (not on arrival, where the skip link comes first), focus goes to the
  // new page's content, so that keyboard and screen-reader users start there.
  const arrived = useRef(false);
  const current = PAGES.find(([path]) => route.path === path || route.path.startsWith(`${path}/`));
  useEffect(() => {
    document.title = current ? `${t(current[1])} · ${t('app.name')}` : t('app.name');
  });
  useEffect(() => {
    const main = document.getElementById('main');
    if (arrived.current && main && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
    arrived.current = true;
  }, [route.path]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main').focus(); }}>${t('nav.skip')}</a>
    <header class="top">
      <a class="brand" href="#/incidents">${t('app.name')}</a>
      <nav aria-label=${t('nav.main')}>
        <ul>
          ${visible.map(([path, key]) => {
            const current = route.path === path || (path === '/incidents' && route.path.startsWith('/incidents/'));
            return html`<li><a href=${href(path)} aria-current=${current ? 'page' : undefined}>${t(key)}</a></li>`;
          })}
        </ul>
      </nav>
      <div class="who">
        <${LanguageSwitch} lang=${lang} onChange=${onLanguage} />
        <span class="user" title=${t(`role.${me.role}`)}>${me.display_name || me.username}</span>
        <button type="button" class="link" onClick=${onLogout}>${t('nav.logout')}</button>
      </div>
    </header>
    <main id="main" tabindex="-1">
      ${Page ? html`<${Page} me=${me} ident=${ident} params=${route.params} key=${route.path} />`
        : html`<h1>${t('page.notFound')}</h1>`}
    </main>`;
}

// Asked before the first render, in parallel with it. No CSRF cookie means no session: the login
// form shows without a request that must fail.
const firstMe = hasSession() ? get('/auth/me') : null;
const PREFETCH = { '/incidents': prefetchQueue, '/dashboard': prefetchDashboard };
if (firstMe && PREFETCH[parseHash().path]) PREFETCH[parseHash().path](parseHash().params);

function App() {
  const [me, setMe] = useState(undefined);
  const [lang, setLang] = useState(() => setLanguage(savedLanguage()));
  const [features, setFeatures] = useState({ notifications: false });

  const changeLanguage = (next, user = me) => {
    setLang(setLanguage(next));
    saveLanguage(user && user.username, next);
  };

  const loadMe = (pending) =>
    (pending || get('/auth/me')).then(
      (user) => {
        setTimeZone(user.timezone || DEFAULT_TIMEZONE);
        setLang(setLanguage(savedLanguage(user.username, user.language)));
        setMe(user);
        probe('/notifications/channels').then(
          (notifications) => setFeatures({ notifications }),
          () => setFeatures({ notifications: false }),
        );
      },
      (error) => {
        if (error instanceof ApiError && error.status === 401) setMe(null);
        else setMe({ error });
      },
    );

  useEffect(() => {
    onUnauthorized(() => setMe(null));
    if (firstMe) loadMe(firstMe);
    else setMe(null);
  }, []);

  const logout = async () => {
    try {
      await post('/auth/logout');
    } finally {
      setCsrf('');
      setMe(null);
      location.hash = '#/incidents';
    }
  };

  if (me === undefined) return html`<main id="main"><${Loading} /></main>`;
  if (me === null || me.error) {
    return html`<${Login}
      lang=${lang}
      error=${me && me.error}
      languageSwitch=${html`<${LanguageSwitch} lang=${lang} onChange=${(l) => changeLanguage(l, null)} />`}
      onLogin=${(result) => {
        setCsrf(result.csrf_token);
        return loadMe();
      }}
    />`;
  }
  return html`<${Shell} me=${me} lang=${lang} features=${features} onLanguage=${(l) => changeLanguage(l)} onLogout=${logout} />`;
}

render(html`<${App} />`, document.getElementById('app'));
