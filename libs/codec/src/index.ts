export { type RegistryConfig, SchemaRegistryCodec, type TopicCodec } from './codec.js';
