import ArgumentParser
import BeanCore
import BeanNet

/// `beanctl`: the operator's client. Commands that talk to a running daemon go through the control
/// socket; offline commands (store, model, segment, bench) work on files directly.
@main
struct BeanCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "beanctl",
        abstract: "Control and inspect the beand bean-inspection daemon.",
        version: BeandVersion.string,
        subcommands: [
            Status.self, Watch.self, Tail.self, Ping.self, Version.self, Reload.self, SetCommand.self,
            Store.self, ModelCommand.self, Segment.self,
            Enroll.self, Eval.self, Train.self,
            Bench.self,
        ]
    )

    /// `beanctl [--socket PATH] [--timeout S] status`: connection options may precede the command
    /// name (as in chronyc); ArgumentParser only accepts them after it, so move them there.
    static func main() {
        // First, before any command starts threads that call BLAS (eval, train, bench, enroll).
        BLASKernels.selectForThisCPU()
        main(hoistingConnectionOptions(Array(CommandLine.arguments.dropFirst())))
    }

    static func hoistingConnectionOptions(_ arguments: [String]) -> [String] {
        var leading: [String] = []
        var rest = arguments[...]
        while let first = rest.first, first.hasPrefix("--socket") || first.hasPrefix("--timeout") {
            leading.append(first)
            rest = rest.dropFirst()
            if !first.contains("="), let value = rest.first {
                leading.append(value)
                rest = rest.dropFirst()
            }
        }
        return Array(rest) + leading
    }
}

/// `beanctl bench …`: benchmarks that print figures (and `--json`) for BENCHMARKS.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the speed of beand's engines on this machine.",
        subcommands: [BenchEncoder.self, BenchStore.self, BenchCapture.self, BenchSegment.self, BenchSpool.self, BenchTrain.self]
    )
}
