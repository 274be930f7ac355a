//! The storage under an in-memory store: one growable buffer.
//!
//! redb's own in-memory backend grows its buffer a byte at a time, which
//! showed up as several percent of a create's CPU once checkpoints started
//! writing thousands of keys at once; this one grows with one `resize`.

use std::{
    io,
    sync::{PoisonError, RwLock},
};

use redb::StorageBackend;

/// A redb storage backend in memory.
#[derive(Debug, Default)]
pub(crate) struct MemoryBackend(RwLock<Vec<u8>>);

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "in-memory store access beyond its end",
    )
}

impl StorageBackend for MemoryBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.read().unwrap_or_else(PoisonError::into_inner).len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let data = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let src = data
            .get(start..start + out.len())
            .ok_or_else(out_of_range)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut buf = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        buf.get_mut(start..start + data.len())
            .ok_or_else(out_of_range)?
            .copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_zeroed_and_refuses_access_past_the_end() {
        let b = MemoryBackend::default();
        b.set_len(8).expect("grow");
        b.write(2, b"ab").expect("write");
        let mut out = [9u8; 4];
        b.read(1, &mut out).expect("read");
        assert_eq!(out, [0, b'a', b'b', 0]);
        assert!(b.read(6, &mut out).is_err());
        assert!(b.write(7, b"xy").is_err());
        b.set_len(2).expect("shrink");
        assert_eq!(b.len().expect("len"), 2);
    }
}
