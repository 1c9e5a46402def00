import Logging

/// The fixed journald `MESSAGE_ID`s of beand's notable events.
///
/// These are a public interface: operators filter with `journalctl MESSAGE_ID=…` and the catalog in
/// `Deploy/` explains each. Never change an ID once released; add a new case instead. Set one on a
/// log record with the `message_id` metadata key (`BeandMessageID.start.metadata`).
public enum BeandMessageID: String, Sendable, CaseIterable {
    /// beand started: config loaded, control and rejects sockets bound, READY=1 sent. Metadata:
    /// `config` (file), `control.socket`, `rejects.socket`, `log.target`, `cameras` (count),
    /// `version`, `blas.core` (OpenBLAS's kernels in use) (journald fields CONFIG, CONTROL_SOCKET,
    /// REJECTS_SOCKET, LOG_TARGET, CAMERAS, VERSION, BLAS_CORE).
    case start = "1cfa89abeabf412e9ec3f0d2ccdfc816"

    /// beand is stopping (SIGTERM or SIGINT): STOPPING=1 sent, in-flight work draining within
    /// `drain_timeout_ms`. Metadata: `signal`, `drain_timeout_ms`.
    case stop = "be4bc216630e4a26b8771081ec0c6f68"

    /// The configuration was re-read and applied (SIGHUP or the control `reload` command).
    /// Metadata: `config` (file), `trigger` (`sighup` or `control`), `changed` (keys that differ).
    case reload = "a65fc8a10a3a405eadcdcf94c8dbdaf6"

    /// A reload failed (invalid new config, or a component refused it); the old configuration stays
    /// in force. Metadata: `config`, `trigger`, `error` (PATH:LINE and key of the first problem).
    case reloadFailed = "44141eac83dd402486d3d8c4d3758fef"

    /// A camera stopped delivering frames (device gone, replay ended, timeout). Metadata: `camera`,
    /// `source`, `error`. Logged by the pipeline (`CameraRuntime`) from capture events and source ends.
    case cameraLost = "478bbf28478543fa8fa70818a08e5f23"

    /// A lost camera delivers frames again. Metadata: `camera`, `source`, `down_s`. Logged by the
    /// pipeline when frames arrive again after a loss.
    case cameraRecovered = "2652af3ea8c74b29b4508c6293cc4e70"

    /// One bean was ejected. Metadata: `RejectEvent.journalFields` lower-cased (journald fields
    /// BEAN_ID, CAMERA, LANE, VERDICT, REASON, LABEL, SCORE, NEIGHBORS, FRAME_SEQ). Logged by the
    /// pipeline's decide thread, one entry per bean (fail-safe ejections are summarised instead).
    case reject = "54a0f2c2cae74b39b6e06137531f9dd8"

    /// The metadata key that carries a message id to the log handlers (journald field `MESSAGE_ID`).
    public static let metadataKey = "message_id"

    /// `["message_id": "<id>"]`, to merge into a log call's metadata.
    public var metadata: [String: Logger.MetadataValue] { [Self.metadataKey: .string(rawValue)] }
}
