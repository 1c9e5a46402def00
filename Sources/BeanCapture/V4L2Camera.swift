#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import CV4L2

/// Why a camera could not deliver frames.
public struct CameraError: Error, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The device is missing, gone, failing or silent (ENOENT, ENODEV, EIO, timeout). Recoverable
        /// by reopening unless `exitOnLoss` is set.
        case unavailable
        /// The device exists but cannot do what the settings ask (format, size, not a capture
        /// device). Reopening will not help.
        case unsupported
        /// The settings themselves are invalid.
        case invalidSettings
    }
    public var kind: Kind
    public var camera: String
    public var device: String
    public var detail: String

    public var description: String { "camera \(camera) (\(device)): \(detail)" }
}

/// A V4L2 capture device through libv4l2: format negotiation, mmap streaming, `poll` with a device
/// timeout, draining to the freshest frame, and reopening after loss.
///
/// Thread ownership: every method except `requestStop()` and `healthBoard` reads belongs to the one
/// capture thread that calls `nextFrame()`. Health is published through `healthBoard`.
public final class V4L2Camera: FrameSource {
    public let settings: CameraSettings
    public let healthBoard: CameraHealthBoard
    public var name: String { settings.name }

    private let events: CameraEventSink?
    private let stop = StopFlag()
    /// Directories searched, in order, for a device given by name rather than path.
    private let searchDirectories: [String]

    // Capture-thread state.
    private var fd: Int32 = -1
    private var buffers: [(start: UnsafeMutableRawPointer, length: Int)] = []
    private var format: NegotiatedFormat?
    private var stride = 0
    private var state: CameraState = .starting
    private var ring: PixelBufferRing
    private var rate = RateMeter()
    private var lastDriverSequence: UInt32?
    /// Added to the driver's sequence (which restarts at 0 on every STREAMON) so frame sequence
    /// numbers stay strictly increasing across reopens.
    private var sequenceBase: UInt64 = 0
    private var lastSequence: UInt64?
    private var backoff: Double
    private var nextAttemptAt: UInt64 = 0
    private var streamStartedAt: UInt64 = 0

    public init(settings: CameraSettings, events: CameraEventSink? = nil,
                searchDirectories: [String] = ["/dev/v4l/by-id", "/dev/v4l/by-path", "/dev"]) throws {
        let problems = settings.validationErrors()
        guard problems.isEmpty else {
            throw CameraError(kind: .invalidSettings, camera: settings.name, device: settings.device,
                              detail: problems.joined(separator: "; "))
        }
        self.settings = settings
        self.events = events
        self.searchDirectories = searchDirectories
        self.healthBoard = CameraHealthBoard(camera: settings.name)
        // Handoff (default 4) + the frame the consumer works on + the one being written.
        self.ring = PixelBufferRing(slots: 6)
        self.backoff = settings.reopenBackoffInitial
    }

    deinit { closeDevice() }

    public func requestStop() { stop.raise() }

    public var health: CameraHealth { healthBoard.snapshot() }

    /// The device node `settings.device` refers to now: a path as given, or a name looked up in
    /// the search directories (by-id, by-path, /dev).
    public static func resolveDevice(_ device: String, searchDirectories: [String]) -> String? {
        if device.contains("/") { return device }
        for directory in searchDirectories {
            let candidate = directory + "/" + device
            if access(candidate, F_OK) == 0 { return candidate }
        }
        return nil
    }

    // MARK: - FrameSource

    public func nextFrame() throws -> Frame? {
        while !stop.isRaised {
            if fd < 0 {
                try openWithBackoff()
                continue
            }
            switch waitForBuffer() {
            case .ready:
                if let frame = try dequeueFreshest() { return frame }
            case .again:
                continue
            case .lost(let reason):
                try handleLoss(reason)
            }
        }
        closeDevice()
        transition(to: .stopped, "stopped on request")
        return nil
    }

    // MARK: - Opening

    private func openWithBackoff() throws {
        let now = monotonicNanoseconds()
        if now < nextAttemptAt {
            interruptibleSleep(seconds: Double(nextAttemptAt - now) / 1e9) { stop.isRaised }
            return
        }
        do {
            try openDevice()
            backoff = settings.reopenBackoffInitial
            let verb = (state == .starting) ? "streaming" : "recovered, streaming"
            transition(to: .streaming, "\(verb): \(format.map(String.init(describing:)) ?? "")")
        } catch let error as CameraError where error.kind == .unavailable {
            closeDevice()
            healthBoard.update { $0.lastError = error.detail }
            if settings.exitOnLoss {
                transition(to: .stopped, "\(error.detail); exit_on_loss is set")
                throw error
            }
            transition(to: .reopening, "\(error.detail); retrying with backoff up to \(settings.reopenBackoffMax) s")
            nextAttemptAt = monotonicNanoseconds() + UInt64(backoff * 1e9)
            backoff = min(backoff * 2, settings.reopenBackoffMax)
        } catch {
            closeDevice()
            transition(to: .stopped, "\(error)")
            throw error
        }
    }

    private func fail(_ kind: CameraError.Kind, _ device: String, _ detail: String) -> CameraError {
        CameraError(kind: kind, camera: settings.name, device: device, detail: detail)
    }

    private func ioctlFailure(_ what: String, _ device: String) -> CameraError {
        let code = errno
        // ENODEV/EIO/ENXIO/ENOENT: the device went away or broke; everything else is the device
        // refusing the request, which reopening will not change.
        let gone = [ENODEV, EIO, ENXIO, ENOENT, ESHUTDOWN, EPIPE].contains(code)
        return fail(gone ? .unavailable : .unsupported, device, "\(what): \(String(cString: strerror(code)))")
    }

    private func xioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer) -> Int32 {
        var rc: Int32
        repeat { rc = beand_v4l2_ioctl(fd, request, argument) } while rc < 0 && errno == EINTR
        return rc
    }

    private func openDevice() throws {
        guard let path = Self.resolveDevice(settings.device, searchDirectories: searchDirectories) else {
            throw fail(.unavailable, settings.device,
                       "no device named \(settings.device) in \(searchDirectories.joined(separator: ", "))")
        }
        fd = beand_v4l2_open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            // Missing, unplugged or busy devices may come (back); anything else (permissions, not a
            // V4L2 device: libv4l2 fails the open with ENOTTY) will not fix itself.
            let kind: CameraError.Kind = [ENOENT, ENODEV, ENXIO, EIO, EBUSY].contains(code) ? .unavailable : .unsupported
            throw fail(kind, path, "cannot open: \(String(cString: strerror(code)))")
        }

        var caps = v4l2_capability()
        guard xioctl(beand_VIDIOC_QUERYCAP(), &caps) == 0 else { throw ioctlFailure("VIDIOC_QUERYCAP", path) }
        let deviceCaps = (caps.capabilities & UInt32(V4L2_CAP_DEVICE_CAPS)) != 0 ? caps.device_caps : caps.capabilities
        guard deviceCaps & UInt32(V4L2_CAP_VIDEO_CAPTURE) != 0 else {
            throw fail(.unsupported, path, "not a video capture device")
        }
        guard deviceCaps & UInt32(V4L2_CAP_STREAMING) != 0 else {
            throw fail(.unsupported, path, "device does not support streaming I/O")
        }
        let driver = cString(of: &caps.driver)
        let card = cString(of: &caps.card)

        let (fourcc, nativeYUYV, emulated) = try chooseFormat(path)
        var fmt = v4l2_format()
        fmt.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        fmt.fmt.pix.width = UInt32(settings.width)
        fmt.fmt.pix.height = UInt32(settings.height)
        fmt.fmt.pix.pixelformat = fourcc
        fmt.fmt.pix.field = V4L2_FIELD_NONE.rawValue
        guard xioctl(beand_VIDIOC_S_FMT(), &fmt) == 0 else { throw ioctlFailure("VIDIOC_S_FMT \(fourccString(fourcc))", path) }
        guard fmt.fmt.pix.pixelformat == fourcc else {
            throw fail(.unsupported, path, "asked for \(fourccString(fourcc)), driver offers \(fourccString(fmt.fmt.pix.pixelformat))")
        }
        guard Int(fmt.fmt.pix.width) == settings.width, Int(fmt.fmt.pix.height) == settings.height else {
            throw fail(.unsupported, path, "asked for \(settings.width)x\(settings.height), driver offers \(fmt.fmt.pix.width)x\(fmt.fmt.pix.height) in \(fourccString(fourcc))")
        }
        let bytesPerPixel = nativeYUYV ? 2 : 3
        stride = max(Int(fmt.fmt.pix.bytesperline), settings.width * bytesPerPixel)

        var fps = settings.fps
        var parm = v4l2_streamparm()
        parm.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        if xioctl(beand_VIDIOC_G_PARM(), &parm) == 0,
           parm.parm.capture.capability & UInt32(V4L2_CAP_TIMEPERFRAME) != 0 {
            parm.parm.capture.timeperframe = v4l2_fract(numerator: 1000, denominator: UInt32((settings.fps * 1000).rounded()))
            if xioctl(beand_VIDIOC_S_PARM(), &parm) == 0, parm.parm.capture.timeperframe.numerator > 0 {
                fps = Double(parm.parm.capture.timeperframe.denominator) / Double(parm.parm.capture.timeperframe.numerator)
            }
        }

        var request = v4l2_requestbuffers()
        request.count = UInt32(settings.bufferCount)
        request.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        request.memory = V4L2_MEMORY_MMAP.rawValue
        guard xioctl(beand_VIDIOC_REQBUFS(), &request) == 0 else { throw ioctlFailure("VIDIOC_REQBUFS", path) }
        guard request.count >= 2 else { throw fail(.unsupported, path, "driver granted only \(request.count) buffer(s)") }

        for index in 0..<request.count {
            var buffer = v4l2_buffer()
            buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            buffer.index = index
            guard xioctl(beand_VIDIOC_QUERYBUF(), &buffer) == 0 else { throw ioctlFailure("VIDIOC_QUERYBUF", path) }
            guard let start = beand_v4l2_mmap(fd, Int(buffer.length), buffer.m.offset),
                  start != UnsafeMutableRawPointer(bitPattern: -1) else {
                throw ioctlFailure("mmap of buffer \(index)", path)
            }
            buffers.append((start, Int(buffer.length)))
        }
        for index in 0..<request.count { try queue(index, path) }
        var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
        guard xioctl(beand_VIDIOC_STREAMON(), &type) == 0 else { throw ioctlFailure("VIDIOC_STREAMON", path) }

        format = NegotiatedFormat(devicePath: path, driver: driver, card: card, width: settings.width,
                                  height: settings.height, fourcc: fourccString(fourcc),
                                  convertedByLibv4l: emulated, convertedNatively: nativeYUYV,
                                  fps: fps, buffers: Int(request.count))
        lastDriverSequence = nil
        sequenceBase = lastSequence.map { $0 + 1 } ?? 0
        streamStartedAt = monotonicNanoseconds()
        rate.reset()
        healthBoard.update { $0.format = self.format }
    }

    /// Picks the FourCC to ask for. Returns it, whether it is YUYV converted here, and whether
    /// libv4lconvert emulates it.
    private func chooseFormat(_ path: String) throws -> (UInt32, nativeYUYV: Bool, emulated: Bool) {
        let rgb = beand_V4L2_PIX_FMT_RGB24(), yuyv = beand_V4L2_PIX_FMT_YUYV()
        var offered: [UInt32: Bool] = [:]  // fourcc → emulated by libv4lconvert
        var index: UInt32 = 0
        while true {
            var desc = v4l2_fmtdesc()
            desc.index = index
            desc.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            guard xioctl(beand_VIDIOC_ENUM_FMT(), &desc) == 0 else { break }
            offered[desc.pixelformat] = desc.flags & UInt32(V4L2_FMT_FLAG_EMULATED) != 0
            index += 1
        }
        let list = offered.keys.map(fourccString).sorted().joined(separator: ", ")
        switch settings.pixelFormat {
        case .rgb24:
            guard let emulated = offered[rgb] else { throw fail(.unsupported, path, "no RGB24, even through libv4lconvert (offers \(list))") }
            return (rgb, false, emulated)
        case .yuyv:
            guard offered[yuyv] == false else { throw fail(.unsupported, path, "driver has no YUYV (offers \(list))") }
            return (yuyv, true, false)
        case .auto:
            if offered[rgb] == false { return (rgb, false, false) }
            if offered[yuyv] == false { return (yuyv, true, false) }
            if offered[rgb] == true { return (rgb, false, true) }
            throw fail(.unsupported, path, "neither RGB24 nor YUYV available (offers \(list))")
        }
    }

    private func queue(_ index: UInt32, _ path: String) throws {
        var buffer = v4l2_buffer()
        buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
        buffer.memory = V4L2_MEMORY_MMAP.rawValue
        buffer.index = index
        guard xioctl(beand_VIDIOC_QBUF(), &buffer) == 0 else { throw ioctlFailure("VIDIOC_QBUF", path) }
    }

    private func closeDevice() {
        guard fd >= 0 else { return }
        var type = Int32(V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue)
        _ = beand_v4l2_ioctl(fd, beand_VIDIOC_STREAMOFF(), &type)
        for buffer in buffers { v4l2_munmap(buffer.start, buffer.length) }
        buffers.removeAll()
        v4l2_close(fd)
        fd = -1
    }

    // MARK: - Streaming

    private enum Wait { case ready, again, lost(String) }

    private func waitForBuffer() -> Wait {
        // Poll in short slices so a stop request is noticed, but judge loss on the whole timeout.
        let deadline = monotonicNanoseconds() + UInt64(settings.deviceTimeout * 1e9)
        while !stop.isRaised {
            let now = monotonicNanoseconds()
            if now >= deadline { return .lost("no frame for \(settings.deviceTimeout) s (device timeout)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let sliceMs = Int32(min(200, max(1, (deadline - now) / 1_000_000)))
            let rc = poll(&pfd, 1, sliceMs)
            if rc < 0 {
                if errno == EINTR { continue }
                return .lost("poll: \(String(cString: strerror(errno)))")
            }
            if rc == 0 { continue }
            if pfd.revents & Int16(POLLIN) != 0 { return .ready }
            if pfd.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 {
                return .lost("device reported an error or hang-up (poll revents 0x\(String(pfd.revents, radix: 16)))")
            }
        }
        return .again
    }

    /// Dequeues every ready buffer, keeps only the newest, and returns it as a frame.
    private func dequeueFreshest() throws -> Frame? {
        var newest: v4l2_buffer?
        while true {
            // Ask poll, not DQBUF, whether another buffer is ready: libv4l2 logs every EAGAIN.
            if newest != nil {
                var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&pfd, 1, 0) == 1, pfd.revents & Int16(POLLIN) != 0 else { break }
            }
            var buffer = v4l2_buffer()
            buffer.type = V4L2_BUF_TYPE_VIDEO_CAPTURE.rawValue
            buffer.memory = V4L2_MEMORY_MMAP.rawValue
            if xioctl(beand_VIDIOC_DQBUF(), &buffer) != 0 {
                if errno == EAGAIN { break }
                let error = ioctlFailure("VIDIOC_DQBUF", format?.devicePath ?? settings.device)
                try handleLoss(error.detail)
                return nil
            }
            if let older = newest {
                healthBoard.update { $0.skippedFrames += 1 }
                account(older)
                guard try requeue(older) else { return nil }
            }
            newest = buffer
        }
        guard let buffer = newest else { return nil }
        account(buffer)
        if buffer.flags & UInt32(V4L2_BUF_FLAG_ERROR) != 0 || Int(buffer.index) >= buffers.count
            || payload(of: buffer).count < frameBytesNeeded {
            healthBoard.update { $0.droppedFrames += 1 }
            _ = try requeue(buffer)
            return nil
        }
        let frame = makeFrame(from: buffer)
        // If the device is lost here, this frame is still good; the next call reopens.
        _ = try requeue(buffer)
        let now = monotonicNanoseconds()
        rate.tick(now: now)
        let fps = rate.rate
        healthBoard.update {
            $0.framesDelivered += 1
            $0.lastFrameAt = frame.captured
            $0.measuredFPS = fps
        }
        return frame
    }

    /// Counts frames the driver dropped: gaps in its sequence numbers.
    private func account(_ buffer: v4l2_buffer) {
        if let last = lastDriverSequence, buffer.sequence > last &+ 1 {
            let gap = UInt64(buffer.sequence - last - 1)
            healthBoard.update { $0.droppedFrames += gap }
        }
        lastDriverSequence = buffer.sequence
    }

    /// Gives a buffer back to the driver. Returns false when the device was lost (and closed).
    private func requeue(_ buffer: v4l2_buffer) throws -> Bool {
        guard fd >= 0 else { return false }
        do {
            try queue(buffer.index, format?.devicePath ?? settings.device)
            return true
        } catch let error as CameraError where error.kind == .unavailable {
            try handleLoss(error.detail)
            return false
        }
    }

    /// The filled part of a driver buffer (drivers that leave `bytesused` at 0 fill all of it).
    private func payload(of buffer: v4l2_buffer) -> UnsafeRawBufferPointer {
        let mapped = buffers[Int(buffer.index)]
        let used = buffer.bytesused == 0 ? mapped.length : min(Int(buffer.bytesused), mapped.length)
        return UnsafeRawBufferPointer(start: mapped.start, count: used)
    }

    /// Bytes a complete frame occupies in a driver buffer; a shorter buffer is dropped, not read.
    private var frameBytesNeeded: Int {
        let bytesPerPixel = (format?.convertedNatively ?? false) ? 2 : 3
        return stride * (settings.height - 1) + settings.width * bytesPerPixel
    }

    private func makeFrame(from buffer: v4l2_buffer) -> Frame {
        let width = settings.width, height = settings.height
        let source = payload(of: buffer)
        let sourceStride = stride
        let nativeYUYV = format?.convertedNatively ?? false
        let pixels = ring.fill(count: width * height * 3) { destination in
            if nativeYUYV {
                YUYVConverter.convert(source: source, sourceStride: sourceStride, destination: destination,
                                      destinationStride: width * 3, width: width, height: height)
            } else {
                for row in 0..<height {
                    let from = source.baseAddress! + row * sourceStride
                    (destination.baseAddress! + row * width * 3).initialize(
                        from: from.assumingMemoryBound(to: UInt8.self), count: width * 3)
                }
            }
        }
        let sequence = sequenceBase + UInt64(buffer.sequence)
        lastSequence = sequence
        return Frame(camera: settings.name, sequence: sequence, captured: captureTime(buffer),
                     width: width, height: height, format: .rgb24, pixels: pixels)
    }

    /// The driver's timestamp when it is on the monotonic clock (the V4L2 default), else now.
    private func captureTime(_ buffer: v4l2_buffer) -> MonotonicInstant {
        let monotonic = buffer.flags & UInt32(V4L2_BUF_FLAG_TIMESTAMP_MASK) == UInt32(V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC)
        let ns = UInt64(buffer.timestamp.tv_sec) * 1_000_000_000 + UInt64(buffer.timestamp.tv_usec) * 1_000
        return (monotonic && ns > 0) ? MonotonicInstant(nanoseconds: ns) : .now()
    }

    // MARK: - Loss

    private func handleLoss(_ reason: String) throws {
        closeDevice()
        healthBoard.update {
            $0.losses += 1
            $0.lastError = reason
            $0.measuredFPS = 0
        }
        if settings.exitOnLoss {
            transition(to: .stopped, "\(reason); exit_on_loss is set")
            throw fail(.unavailable, format?.devicePath ?? settings.device, reason)
        }
        transition(to: .lost, reason)
        backoff = settings.reopenBackoffInitial
        nextAttemptAt = monotonicNanoseconds() + UInt64(backoff * 1e9)
    }

    /// Publishes a state change and reports it once; repeated transitions to the same state are
    /// silent, so a device that stays away does not flood the log.
    private func transition(to newState: CameraState, _ message: String) {
        guard newState != state else { return }
        state = newState
        healthBoard.update { $0.state = newState }
        events?.cameraEvent(CameraEvent(camera: settings.name, state: newState, message: message))
    }
}

func fourccString(_ code: UInt32) -> String {
    let bytes = (0..<4).map { UInt8(truncatingIfNeeded: code >> (8 * $0)) }
    return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " ")
}

private extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.last == set { s = s.dropLast() }
        return String(s)
    }
}

private func cString<T>(of tuple: inout T) -> String {
    withUnsafeBytes(of: &tuple) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
}
