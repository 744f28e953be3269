// Hash routes (#/incidents/ID?status=new): the static server needs no rewrite rules.
import { useEffect, useState } from 'preact/hooks';

export function parseHash() {
  const hash = location.hash.replace(/^#/, '') || '/incidents';
  const [path, query] = hash.split('?');
  return { path, params: Object.fromEntries(new URLSearchParams(query || '')) };
}

export function href(path, params) {
  const query = new URLSearchParams(
    Object.entries(params || {}).filter(([, v]) => v !== '' && v !== undefined && v !== null),
  ).toString();
  return `#${path}${query ? `?${query}` : ''}`;
}

export function navigate(path, params, replace) {
  const target = href(path, params);
  if (replace) history.replaceState(null, '', target);
  else location.hash = target;
  if (replace) dispatchEvent(new HashChangeEvent('hashchange'));
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const update = () => setRoute(parseHash());
    addEventListener('hashchange', update);
    return () => removeEventListener('hashchange', update);
  }, []);
  return route;
}
