import BeanCore

/// A bean decided on the belt, cut out for the encoder.
public struct DecidedBean: Sendable {
    public var event: DecisionEvent
    public var crop: BeanCrop
}

/// One camera's vision stage: segmentation, tracking and oriented crops of the decided beans.
/// Owned by the camera's thread.
public final class BeltVision {
    public let segmenter: Segmenter
    public let tracker: BeltTracker
    public let cropSettings: CropSettings
    /// With `.auto` background, the belt colour is learned from this many first frames, then fixed.
    public let learningFrames: Int
    private var decided: [DecidedBean] = []

    public init(segmenter: SegmenterSettings, tracker: TrackerSettings, crop: CropSettings, learningFrames: Int = 10) throws {
        try crop.validate()
        self.segmenter = try Segmenter(settings: segmenter)
        self.tracker = try BeltTracker(settings: tracker)
        self.cropSettings = crop
        self.learningFrames = max(1, learningFrames)
        decided.reserveCapacity(64)
    }

    /// Segments and tracks one frame; returns the beans that crossed the decision line in it, with
    /// their crops (valid until the next call).
    public func process(_ frame: Frame) throws -> [DecidedBean] {
        if case .auto = segmenter.settings.background, segmenter.learnedFrames < learningFrames {
            try segmenter.learnBackground(from: frame)
        }
        let beans = try segmenter.segment(frame)
        decided.removeAll(keepingCapacity: true)
        for event in tracker.update(beans: beans, frameWidth: frame.width, frameHeight: frame.height,
                                    sequence: frame.sequence, captured: frame.captured) {
            let crop = segmenter.beanCrop(of: event.bean, in: frame, beanID: event.beanID, settings: cropSettings)
            decided.append(DecidedBean(event: event, crop: crop))
        }
        return decided
    }
}
