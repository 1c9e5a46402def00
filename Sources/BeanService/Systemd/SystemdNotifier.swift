#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import CSystemd

/// Talks to the service manager through `NOTIFY_SOCKET` (`sd_notify`, which also handles abstract
/// `@` sockets). A no-op when beand is not run by systemd.
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Sends `state` (`NAME=value` lines); returns false when there is no manager or sending failed.
    @discardableResult
    public func send(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(status)") }
    public func status(_ line: String) { send("STATUS=\(line)") }
    public func watchdog() { send("WATCHDOG=1") }
    /// `MONOTONIC_USEC` tells systemd (`Type=notify-reload`) which reload this is.
    public func reloading(at instant: MonotonicInstant = .now()) {
        send("RELOADING=1\nMONOTONIC_USEC=\(instant.microseconds)")
    }
    public func stopping() { send("STOPPING=1") }

    /// Half of `WATCHDOG_USEC` when the manager expects watchdog pings from this process, else nil.
    public static func watchdogPingInterval() -> Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(clamping: microseconds / 2))
    }
}
