//! tartlab on a fleet of Macs through the real Orchard controller and workers
//! (`support::orchard`): the fleet itself, the seed lab across workers, ownership of the
//! controller's VMs, and the engine through an Orchard-shaped provider.

mod fleet;
mod ownership;
mod seed;
mod shaped;
