import ArgumentParser
import BeanCore

/// `beanctl`: the operator's client. Commands that talk to a running daemon go through the control
/// socket; offline commands (store, model, segment, bench) work on files directly.
@main
struct BeanCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "beanctl",
        abstract: "Control and inspect the beand bean-inspection daemon.",
        version: BeandVersion.string,
        subcommands: [
            Bench.self, ModelCommand.self,
        ]
    )
}

/// `beanctl bench …`: benchmarks that print figures (and `--json`) for BENCHMARKS.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of beand's engines on this machine.",
        subcommands: [BenchEncoder.self]
    )
}
