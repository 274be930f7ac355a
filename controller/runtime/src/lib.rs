//! stub
pub mod cli {
    pub fn main() -> anyhow::Result<()> {
        Ok(())
    }
}
