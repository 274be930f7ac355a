//! `yunshuctl`: the command line for departments and admins.

fn main() -> std::process::ExitCode {
    yunshu_ctl::main()
}
