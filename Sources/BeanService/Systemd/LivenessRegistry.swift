import Atomics
import Synchronization

/// Proof of progress for the watchdog. Every loop that must not hang (the event loop, the status
/// ticker, later each capture and encoder loop) registers once and calls `beat()` each time round;
/// `WATCHDOG=1` is sent only when every registered loop has beaten since the previous ping, so one
/// wedged loop makes systemd restart the daemon.
public final class LivenessRegistry: Sendable {
    /// How often a registered loop must beat at the least. Derived from the watchdog interval so a
    /// healthy loop beats at least twice between pings.
    public let beatInterval: Duration

    private struct Entry {
        let name: String
        let counter: ManagedAtomic<UInt64>
        var seen: UInt64
    }
    private let entries = Mutex<[Entry]>([])

    public init(beatInterval: Duration) { self.beatInterval = beatInterval }

    /// Registers a loop. The loop owns the token and beats it from its own thread.
    public func register(_ name: String) -> LivenessToken {
        let counter = ManagedAtomic<UInt64>(0)
        entries.withLock { $0.append(Entry(name: name, counter: counter, seen: 0)) }
        return LivenessToken(name: name, counter: counter, registry: self)
    }

    func unregister(_ counter: ManagedAtomic<UInt64>) {
        entries.withLock { $0.removeAll { $0.counter === counter } }
    }

    /// Names of loops that have not beaten since the previous call (empty: all made progress), and
    /// marks the current counts as seen.
    public func stalledSinceLastCheck() -> [String] {
        entries.withLock { entries in
            var stalled: [String] = []
            for index in entries.indices {
                let now = entries[index].counter.load(ordering: .relaxed)
                if now == entries[index].seen { stalled.append(entries[index].name) }
                entries[index].seen = now
            }
            return stalled
        }
    }

    public var registeredNames: [String] { entries.withLock { $0.map(\.name) } }
}

/// A registered loop's handle: `beat()` is one relaxed atomic increment, cheap enough for any loop.
public final class LivenessToken: Sendable {
    public let name: String
    private let counter: ManagedAtomic<UInt64>
    private let registry: LivenessRegistry

    init(name: String, counter: ManagedAtomic<UInt64>, registry: LivenessRegistry) {
        self.name = name
        self.counter = counter
        self.registry = registry
    }

    public func beat() { counter.wrappingIncrement(ordering: .relaxed) }

    /// A loop that ends on purpose unregisters, so its silence does not stop the watchdog.
    public func unregister() { registry.unregister(counter) }
}
