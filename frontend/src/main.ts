import './style.css';
import { startApp } from './app';
import { h, fill } from './dom';

const root = document.getElementById('app')!;
startApp(root).catch((err: Error) => {
  fill(root, h('div', { class: 'fatal' }, h('h1', null, 'Pollen cannot start'), h('p', null, err.message)));
});
