//! Where dead letters go.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use schemas::DeadLetter;

/// A destination for dead letters.
pub trait DeadLetterSink: Send {
    /// Stores one dead letter.
    fn send(&mut self, dead: DeadLetter) -> std::io::Result<()>;
    /// Makes everything sent so far durable.
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Dead letters as JSON lines in a file.
pub struct JsonLinesDeadLetters {
    out: BufWriter<File>,
}

impl JsonLinesDeadLetters {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            out: BufWriter::new(File::create(path)?),
        })
    }
}

impl DeadLetterSink for JsonLinesDeadLetters {
    fn send(&mut self, dead: DeadLetter) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, &dead)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Dead letters kept in memory (tests, and runs without a dead-letter file: only counted).
#[derive(Clone, Default)]
pub struct MemoryDeadLetters {
    kept: Arc<Mutex<Vec<DeadLetter>>>,
    /// Keep at most this many (0 = keep none, only count upstream).
    limit: usize,
}

impl MemoryDeadLetters {
    /// Keeps up to `limit` dead letters.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            kept: Arc::default(),
            limit,
        }
    }

    /// The dead letters kept so far.
    pub fn kept(&self) -> Vec<DeadLetter> {
        self.kept.lock().map(|k| k.clone()).unwrap_or_default()
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    fn send(&mut self, dead: DeadLetter) -> std::io::Result<()> {
        if let Ok(mut k) = self.kept.lock()
            && k.len() < self.limit
        {
            k.push(dead);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
