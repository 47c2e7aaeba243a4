import { InMemoryJoinStore } from '@driftline/join';
import { joinContractConfig, joinStoreContract } from './join-contract.js';

joinStoreContract('in memory', () => ({ store: new InMemoryJoinStore<Buffer, Buffer>(joinContractConfig) }));
