//! The commands, each a function of a [`Context`] and an [`Io`], so they
//! run the same in the binary and in tests.

pub mod config;
pub mod create;
pub mod credentials;
pub mod department;
pub mod instance;
pub mod placement;
pub mod read;
pub mod volume;

use std::io::Write;

use chrono::{DateTime, Utc};

use crate::{
    cli::{Cli, Command, Format},
    client::Client,
    config::Settings,
    error::{Error, Exit, Result},
};

/// Where a command writes: results to `out`, errors, warnings and (with
/// `-o json|yaml`) progress to `err`.
pub struct Io<'a> {
    /// Results.
    pub out: &'a mut dyn Write,
    /// Diagnostics.
    pub err: &'a mut dyn Write,
}

impl Io<'_> {
    /// Where `--wait` progress goes: with the results in table output,
    /// else to `err` so stdout stays parseable.
    pub fn progress(&mut self, format: Format) -> &mut dyn Write {
        match format {
            Format::Table => &mut *self.out,
            Format::Json | Format::Yaml => &mut *self.err,
        }
    }
}

/// What every connected command needs.
pub struct Context {
    /// The API.
    pub client: Client,
    /// The settings in effect.
    pub settings: Settings,
    /// The output format.
    pub format: Format,
    /// The time "now" for ages in tables.
    pub now: DateTime<Utc>,
}

impl Context {
    /// `departments/{department}`, or a usage error.
    pub fn parent(&self) -> Result<String> {
        self.settings.parent()
    }

    /// The full resource name of `name`: kept if it is one already, else
    /// under the configured department.
    pub fn resource_name(&self, kind: crate::resource::Kind, name: &str) -> Result<String> {
        if name.contains('/') {
            Ok(name.to_owned())
        } else {
            Ok(kind.resource_name(&self.parent()?, name))
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: &Cli, io: &mut Io<'_>) -> Result<()> {
    if let Command::Config(c) = &cli.command {
        return config::run(c, &cli.global, io);
    }
    let settings = Settings::resolve(&cli.global)?;
    execute(settings, cli.global.output, &cli.command, io).await
}

/// Runs a command with the given settings: connects, then dispatches.
pub async fn execute(
    settings: Settings,
    format: Format,
    command: &Command,
    io: &mut Io<'_>,
) -> Result<()> {
    let client = Client::connect(&settings, io.err).await?;
    let ctx = Context {
        client,
        settings,
        format,
        now: Utc::now(),
    };
    match command {
        Command::Config(_) => Err(Error::Usage(
            "config commands do not connect; run them through `run`".into(),
        )),
        Command::Create(c) => create::run(&ctx, c, io).await,
        Command::Get(a) => read::get(&ctx, a, io).await,
        Command::List(a) => read::list(&ctx, a, io).await,
        Command::Delete(a) => read::delete(&ctx, a, io).await,
        Command::Watch(a) => read::watch(&ctx, a, io).await,
        Command::Start(c) => instance::start(&ctx, c, io).await,
        Command::Stop(c) => instance::stop(&ctx, c, io).await,
        Command::Reboot(c) => instance::reboot(&ctx, c, io).await,
        Command::Resize(c) => instance::resize(&ctx, c, io).await,
        Command::Credentials(c) => credentials::run(&ctx, c, io).await,
        Command::Attach(c) => volume::attach(&ctx, c, io).await,
        Command::Detach(c) => volume::detach(&ctx, c, io).await,
        Command::Quota => department::quota(&ctx, io).await,
        Command::Catalog => department::catalog(&ctx, io).await,
        Command::Bill(a) => department::bill(&ctx, a, io).await,
        Command::Explain(a) => placement::explain(&ctx, a, io).await,
        Command::DryRun(c) => placement::dry_run(&ctx, c, io).await,
    }
}

/// Runs a command line and reports the outcome as `main` does: errors are
/// rendered on `io.err`, and the exit code is returned.
pub async fn run_and_report(cli: &Cli, io: &mut Io<'_>) -> Exit {
    match run(cli, io).await {
        Ok(()) => Exit::Ok,
        // `yunshuctl list instances | head -1`: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => Exit::Ok,
        Err(e) => {
            let _ = e.render(io.err);
            let _ = io.err.flush();
            e.exit()
        }
    }
}

/// A new request id: a random UUID.
pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
