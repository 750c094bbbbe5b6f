//! `tandem-server [CONFIG_FILE] [--directive value ...]`, like `redis-server`; the command
//! line lives in [`tandem_server::cli`].

use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    tandem_server::cli::run(&args)
}
