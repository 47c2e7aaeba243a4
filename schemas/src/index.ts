export * from './contracts.js';
export * from './generated.js';
