/// A component that takes a new configuration without a restart (the store reopens its newest
/// generation, the encoder loads a new model, …). The reload coordinator calls `apply` for each
/// registered component, in registration order, on its own serial queue; a throw fails the reload
/// and is reported with the RELOAD_FAILED message id. Components applied before the failing one
/// keep the new config, so `apply` must validate before it changes anything it cannot undo.
public protocol Reloadable: AnyObject, Sendable {
    /// Shown in logs and reload errors (`store`, `encoder`).
    var reloadName: String { get }
    func apply(_ new: DaemonConfig, previous: DaemonConfig) throws
    /// The store generation in force after a reload, for the `reload` result; nil when this
    /// component has none.
    var generation: UInt64? { get }
}

extension Reloadable {
    public var generation: UInt64? { nil }
}

/// A component with in-flight work to finish at stop (a pipeline stage, the reject spool). Called
/// once after STOPPING=1; must return by `deadline`, abandoning what is left.
public protocol Drainable: AnyObject, Sendable {
    var drainName: String { get }
    func drain(until deadline: ContinuousClock.Instant)
}
