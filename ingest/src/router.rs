//! Routing decoded inputs to dataflow workers at monotone logical times.

use crossbeam_channel::Sender;
use schemas::{Feed, Input, SensorEvent, Text};

/// Sends inputs to workers. Times are rounded up to the epoch length and never go
/// backwards; a record older than the clock counts at the clock ([`Router::is_late`]: the
/// ingestor counts it, never silently). Records are spread
/// over workers by a fixed hash of their key, so the same input goes to the same
/// worker on every run.
///
/// Inputs travel in batches (one channel message per [`BATCH`] records, or fewer at each
/// [`Router::flush`] and clock advance), so the channel costs little per record.
///
/// Events go out as `E`, made from the decoded event by the router's `prepare` on the
/// sending (ingest) thread: the workers get the form they keep, without converting the
/// event or freeing what they do not keep ([`Router::with_prepare`]). `prepare` reads the
/// event where it was decoded, its text in the record ([`schemas::decode_event_in`]):
/// moved by value, its 376 bytes were copied twice per event, each copy waiting for the
/// stores that had just written it.
pub struct Router<E = SensorEvent> {
    workers: Vec<Sender<Vec<Feed<E>>>>,
    buffers: Vec<Vec<Feed<E>>>,
    prepare: fn(&SensorEvent<Text<'_>>) -> E,
    epoch_ms: u64,
    /// Lowest logical time still allowed (every worker has been told so).
    floor: u64,
    /// Whether a record was sent: the first one's time is announced to every worker, so
    /// what a worker starts at that time (worker 0 holds the roster) does not depend on
    /// which worker the first record goes to, nor on how many there are.
    started: bool,
}

/// Most inputs in one channel message.
pub const BATCH: usize = 1024;

/// The workers are gone (the dataflow stopped).
#[derive(Debug, thiserror::Error)]
#[error("the dataflow workers stopped accepting input")]
pub struct Disconnected;

/// The event owning its text: what [`Router::new`] sends.
fn owned(event: &SensorEvent<Text<'_>>) -> SensorEvent {
    event.to_owned_event()
}

impl Router {
    /// A router over the workers' channels with epochs of `epoch_ms` (at least 1), sending
    /// events as decoded (copies of them).
    pub fn new(workers: Vec<Sender<Vec<Feed>>>, epoch_ms: u64) -> Self {
        Self::with_prepare(workers, epoch_ms, owned)
    }
}

impl<E> Router<E> {
    /// A router over the workers' channels with epochs of `epoch_ms` (at least 1), sending
    /// each event as `prepare` makes it.
    pub fn with_prepare(
        workers: Vec<Sender<Vec<Feed<E>>>>,
        epoch_ms: u64,
        prepare: fn(&SensorEvent<Text<'_>>) -> E,
    ) -> Self {
        Self {
            buffers: workers.iter().map(|_| Vec::new()).collect(),
            workers,
            prepare,
            epoch_ms: epoch_ms.max(1),
            floor: 0,
            started: false,
        }
    }

    /// The logical time a record with timestamp `ts_ms` gets.
    pub fn time_for(&self, ts_ms: i64) -> u64 {
        let ts = u64::try_from(ts_ms).unwrap_or(0);
        ts.div_ceil(self.epoch_ms)
            .saturating_mul(self.epoch_ms)
            .max(self.floor)
    }

    /// Whether a record stamped `ts_ms` is behind the clock: its own time (the timestamp
    /// rounded up to the epoch) is before the floor, so it counts at the floor.
    pub fn is_late(&self, ts_ms: i64) -> bool {
        let ts = u64::try_from(ts_ms).unwrap_or(0);
        ts.div_ceil(self.epoch_ms).saturating_mul(self.epoch_ms) < self.floor
    }

    /// Sends `input` with timestamp `ts_ms` to its worker; returns its logical time.
    pub fn send(&mut self, ts_ms: i64, input: Input) -> Result<u64, Disconnected> {
        let key = match input {
            Input::Event(ref e) => return self.send_event(ts_ms, &e.view()),
            Input::Indicator(ref i) => fnv1a(i.id.as_bytes()),
            Input::Action(ref a) => fnv1a(a.action_id.as_bytes()),
        };
        let prepare = self.prepare;
        let input = input.map_event(|e| prepare(&e.view()));
        self.push(ts_ms, key, input)
    }

    /// Sends `event` with timestamp `ts_ms` to its worker, as [`Router::send`] would;
    /// returns its logical time.
    pub fn send_event(
        &mut self,
        ts_ms: i64,
        event: &SensorEvent<Text<'_>>,
    ) -> Result<u64, Disconnected> {
        let key = fnv1a(event.event_id.as_bytes());
        let prepared = (self.prepare)(event);
        self.push(ts_ms, key, Input::Event(prepared))
    }

    /// Buffers `input` for the worker `key` picks, at the logical time of `ts_ms`.
    fn push(&mut self, ts_ms: i64, key: u64, input: Input<E>) -> Result<u64, Disconnected> {
        let time_ms = self.time_for(ts_ms);
        if !self.started {
            self.started = true;
            for buffer in &mut self.buffers {
                buffer.push(Feed::Advance { time_ms });
            }
        }
        let worker = key as usize % self.workers.len().max(1);
        let buffer = self.buffers.get_mut(worker).ok_or(Disconnected)?;
        buffer.push(Feed::Record { time_ms, input });
        if buffer.len() >= BATCH {
            self.send_buffer(worker)?;
        }
        Ok(time_ms)
    }

    fn send_buffer(&mut self, worker: usize) -> Result<(), Disconnected> {
        let Some(buffer) = self.buffers.get_mut(worker) else {
            return Ok(());
        };
        if buffer.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(buffer, Vec::with_capacity(BATCH));
        self.workers
            .get(worker)
            .ok_or(Disconnected)?
            .send(batch)
            .map_err(|_| Disconnected)
    }

    /// Sends every buffered input to its worker.
    pub fn flush(&mut self) -> Result<(), Disconnected> {
        for worker in 0..self.workers.len() {
            self.send_buffer(worker)?;
        }
        Ok(())
    }

    /// Tells every worker that no record earlier than the watermark's epoch will come: no
    /// record stamped before `watermark_ms` will come, and a record stamped at or after it
    /// takes the epoch boundary at or after it (times round up), so that boundary is the
    /// new floor. An epoch closes as soon as the watermark reaches its end.
    pub fn advance(&mut self, watermark_ms: i64) -> Result<(), Disconnected> {
        let w = u64::try_from(watermark_ms).unwrap_or(0);
        let time_ms = w.div_ceil(self.epoch_ms).saturating_mul(self.epoch_ms);
        if time_ms > self.floor {
            self.floor = time_ms;
            for buffer in &mut self.buffers {
                buffer.push(Feed::Advance { time_ms });
            }
            self.flush()?;
        }
        Ok(())
    }
}

impl<E> Drop for Router<E> {
    fn drop(&mut self) {
        // Buffered inputs still go out when the router is dropped (end of input).
        let _ = self.flush();
    }
}

/// FNV-1a: a fixed hash, so routing does not depend on a randomized hasher.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_up_to_epochs_and_never_go_back() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut r = Router::new(vec![tx], 10);
        assert_eq!(r.time_for(1001), 1010);
        assert_eq!(r.time_for(1010), 1010);
        r.advance(2005).unwrap();
        assert_eq!(
            rx.try_recv().unwrap(),
            vec![Feed::Advance { time_ms: 2010 }]
        );
        assert_eq!(
            r.time_for(2005),
            2010,
            "a record at the watermark is not late"
        );
        assert!(!r.is_late(2001), "in the floor's epoch: not late");
        assert!(r.is_late(2000));
        assert_eq!(r.time_for(1500), 2010, "a late record counts at the clock");
        r.advance(1000).unwrap();
        assert!(rx.try_recv().is_err(), "the clock never goes back");
    }

    #[test]
    fn prepared_events_go_to_the_worker_of_their_decoded_form() {
        let event: SensorEvent = serde_json::from_str(
            r#"{"schema_version":1,"event_id":"e-7","sensor_id":"s1","country":"FR",
                "observed_at":"2026-01-01T00:00:00Z","kind":"dns","domain":"a.example"}"#,
        )
        .unwrap();
        fn channels<E>() -> (
            Vec<Sender<Vec<Feed<E>>>>,
            Vec<crossbeam_channel::Receiver<Vec<Feed<E>>>>,
        ) {
            (0..3).map(|_| crossbeam_channel::unbounded()).unzip()
        }
        let (txs, plain) = channels();
        let mut r = Router::new(txs, 10);
        r.send(1001, Input::Event(event.clone())).unwrap();
        r.flush().unwrap();
        let (txs, prepared) = channels();
        let mut r = Router::with_prepare(txs, 10, |e: &SensorEvent<Text<'_>>| e.event_id.len());
        r.send(1001, Input::Event(event)).unwrap();
        r.flush().unwrap();
        for (plain, prepared) in plain.iter().zip(&prepared) {
            let plain = plain.try_recv().unwrap();
            let prepared = prepared.try_recv().unwrap();
            let expected: Vec<Feed<usize>> = plain
                .into_iter()
                .map(|f| f.map_event(|e| e.event_id.len()))
                .collect();
            assert_eq!(
                prepared, expected,
                "same worker, same time, the event prepared"
            );
        }
    }
}
