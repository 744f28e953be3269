// Message catalogues: every visible string comes from here. Vietnamese first.
import vi from '../locales/vi.json';
import en from '../locales/en.json';

export const LANGUAGES = { vi, en };
export const DEFAULT_LANGUAGE = 'vi';
let current = DEFAULT_LANGUAGE;

export function setLanguage(lang) {
  current = LANGUAGES[lang] ? lang : DEFAULT_LANGUAGE;
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

export function t(key, vars) {
  let text = LANGUAGES[current][key] ?? LANGUAGES[DEFAULT_LANGUAGE][key] ?? key;
  if (vars) for (const [name, value] of Object.entries(vars)) text = text.replaceAll(`{${name}}`, value);
  return text;
}

const STORE_KEY = 'soc.lang';

/** The language chosen by this user on this browser, else the one last used here, else theirs. */
export function savedLanguage(username, fallback) {
  try {
    return (
      (username && localStorage.getItem(`${STORE_KEY}.${username}`)) ||
      localStorage.getItem(STORE_KEY) ||
      fallback ||
      DEFAULT_LANGUAGE
    );
  } catch {
    return fallback || DEFAULT_LANGUAGE;
  }
}

export function saveLanguage(username, lang) {
  try {
    localStorage.setItem(STORE_KEY, lang);
    if (username) localStorage.setItem(`${STORE_KEY}.${username}`, lang);
  } catch {
    // Storage refused (private mode): the choice lasts this page only.
  }
}
