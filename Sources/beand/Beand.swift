#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import BeanCore
import BeanService
import Logging

/// `beand`: the inspection daemon. Everything it does lives in BeanService; this is the command line.
@main
struct Beand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "beand",
        abstract: "The green-coffee-bean inspection daemon.",
        discussion: """
            Exit status: 0 after an orderly stop (SIGTERM, SIGINT) or a valid --check-config; \
            78 (EX_CONFIG) for an invalid configuration or a missing group; 71 (EX_OSERR) when a \
            socket cannot be bound; 64 for bad command-line usage.
            """,
        version: BeandVersion.string
    )

    @Option(name: .long, help: ArgumentHelp("Configuration file.", valueName: "path"))
    var config: String = ConfigLoader.defaultPath

    @Flag(name: .long, help: "Validate the configuration file and exit: 0 when valid, 78 when not.")
    var checkConfig = false

    func run() throws {
        let loaded: DaemonConfig
        do {
            loaded = try ConfigLoader.load(path: config)
        } catch {
            Self.printError("\(error)")
            throw ExitCode(StartupError.exConfig)
        }
        if checkConfig {
            print("\(config): valid")
            return
        }
        BeandLogging.bootstrap()
        BeandLogging.shared.configure(loaded.log, environment: Daemon.environment())
        // Before any thread exists that could call BLAS (the switch is not thread-safe).
        Daemon.configureBLAS()
        let daemon = Daemon(configPath: config, config: loaded)
        let code: Int32
        do {
            code = try daemon.run()
        } catch let error as StartupError {
            Logger(label: "beand").critical("cannot start: \(error.description)")
            // Under journald the record above is not on the terminal of whoever started beand.
            if BeandLogging.shared.target == .journald { Self.printError("beand: cannot start: \(error.description)") }
            throw ExitCode(error.exitCode)
        }
        throw ExitCode(code)
    }

    static func printError(_ text: String) {
        var line = text
        if !line.hasSuffix("\n") { line += "\n" }
        fputs(line, stderr)
    }
}
