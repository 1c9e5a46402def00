import BeanCore

/// Anything that produces frames: a V4L2 camera, a replay directory, the belt simulator.
/// A source is driven by exactly one thread (its capture thread); it is not shared.
public protocol FrameSource: AnyObject {
    /// Camera name from the config, used in logs and in every frame.
    var name: String { get }
    /// Blocks until the next frame or a timeout; `nil` when the source has ended (replay `once`).
    func nextFrame() throws -> Frame?
    /// Asks a blocked or pacing `nextFrame()` to return soon (with `nil`). The only member another
    /// thread may call; sources implement it with an atomic flag.
    func requestStop()
}

extension FrameSource {
    /// Sources that never block for long (test doubles) need not implement it.
    public func requestStop() {}
}
