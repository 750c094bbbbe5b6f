//! Prints the RedisReplicaSet CRD as YAML: `cargo run -p tandem-operator --bin crdgen >
//! crds/redisreplicasets.tandem.dev.yaml`. No network.

fn main() -> anyhow::Result<()> {
    print!("{}", tandem_operator::crd::crd_yaml()?);
    Ok(())
}
