import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';

const start = performance.now();
const app = mount(App, { target: document.getElementById('app') as HTMLElement });
// The first render's time, for the budget the e2e run prints.
requestAnimationFrame(() => {
  (window as unknown as { __dreamFirstRender: number }).__dreamFirstRender = performance.now() - start;
});
export default app;
