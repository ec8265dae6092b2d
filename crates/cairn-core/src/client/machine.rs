//! The one shape of the client's protocol machines, so one driver (in `cairn-client`) and
//! one simulated executor can run any of them: the driver calls [`Machine::start`] once,
//! then [`Machine::handle`] with each event (an answer, a failure, a timer tick) and the
//! time, and carries out the actions returned, until [`Machine::is_done`]. Time comes in
//! as [`Millis`] from an origin the driver picks; a machine never reads a clock, and asks
//! for a tick by [`Machine::next_deadline`].
//!
//! Each machine keeps its own event and action vocabulary (a servermap query is not a
//! block read); what the driver needs of every event vocabulary is [`MachineEvent`]: how to
//! make a tick, and which request an answer or a failure ends.

/// Milliseconds since an origin the driver chooses (only differences matter).
pub type Millis = u64;

/// Identifies one request for the life of a machine.
pub type RequestId = u64;

/// A protocol machine: events and the time in, actions out; never re-entered.
pub trait Machine {
    type Event: MachineEvent;
    type Action;
    /// The driver broke the protocol with the machine (a driver bug, never a server's).
    type Error: std::fmt::Display;

    /// The first actions.
    fn start(&mut self, now: Millis) -> Vec<Self::Action>;
    /// One event; the actions it leads to.
    fn handle(&mut self, event: Self::Event, now: Millis)
        -> Result<Vec<Self::Action>, Self::Error>;
    /// When the machine wants a tick even if nothing else happens.
    fn next_deadline(&self) -> Option<Millis>;
    /// Whether the machine has finished (its outcome is final).
    fn is_done(&self) -> bool;
}

/// What a driver needs of every machine's events.
pub trait MachineEvent: Sized {
    /// Time passed.
    fn tick() -> Self;
    fn is_tick(&self) -> bool;
    /// The request this event answers or fails, if any (the driver stops tracking it).
    fn request(&self) -> Option<RequestId>;
}

/// One implementation of [`Machine`] and [`MachineEvent`] per machine: each already has the
/// inherent methods, with the same names and meaning.
macro_rules! machine {
    ($machine:ty, $event:ident, $action:ty, $error:ty, [$($answer:ident),+]) => {
        impl $crate::client::machine::Machine for $machine {
            type Event = $event;
            type Action = $action;
            type Error = $error;
            fn start(&mut self, now: $crate::client::machine::Millis) -> Vec<$action> {
                <$machine>::start(self, now)
            }
            fn handle(
                &mut self,
                event: $event,
                now: $crate::client::machine::Millis,
            ) -> Result<Vec<$action>, $error> {
                <$machine>::handle(self, event, now)
            }
            fn next_deadline(&self) -> Option<$crate::client::machine::Millis> {
                <$machine>::next_deadline(self)
            }
            fn is_done(&self) -> bool {
                <$machine>::is_done(self)
            }
        }

        impl $crate::client::machine::MachineEvent for $event {
            fn tick() -> Self {
                $event::Tick
            }
            fn is_tick(&self) -> bool {
                matches!(self, $event::Tick)
            }
            fn request(&self) -> Option<$crate::client::machine::RequestId> {
                match self {
                    $($event::$answer { id, .. })|+ => Some(*id),
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use machine;
