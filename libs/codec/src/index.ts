export { type RegistryConfig, SchemaRegistryCodec, type TopicCodec } from './codec.js';
export { registryEnvShape, toRegistryConfig } from './config.js';
