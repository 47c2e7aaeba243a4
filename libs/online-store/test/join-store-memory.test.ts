import { InMemoryJoinStore, joinKey } from '@driftline/join';
import { joinContractConfig, joinStoreContract } from './join-contract.js';

joinStoreContract('in memory', () => {
  const store = new InMemoryJoinStore<Buffer, Buffer>(joinContractConfig);
  return {
    store,
    async forget(ref) {
      store.states.delete(joinKey(ref));
    },
  };
});
