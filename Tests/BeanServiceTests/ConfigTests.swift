import Testing
@testable import BeanService
import BeanInspect
import BeanVision

private let file = "/etc/beand/test.toml"

private func problems(_ text: String) -> String? {
    do {
        _ = try ConfigLoader.parse(text, file: file)
        return nil
    } catch let error as ConfigError {
        return error.description
    } catch {
        return "unexpected \(error)"
    }
}

/// Each bad document with the exact message an operator sees (line numbers counted by hand from the
/// document text, not taken from the implementation).
private let badConfigs: [(String, String)] = [
    ("[control]\nsocket = \"run/beand/control.sock\"\n",
     "\(file):2: key 'control.socket': must be an absolute path, got 'run/beand/control.sock'"),
    ("[control]\nsockett = \"/run/x.sock\"\n",
     "\(file):2: key 'control.sockett': unknown key"),
    ("[daemon]\n\n[contrl]\nsocket = \"/run/x.sock\"\n",
     "\(file):3: key 'contrl': unknown table"),
    ("[control]\nidle_timeout_s = \"60\"\n",
     "\(file):2: key 'control.idle_timeout_s': expected integer, found string"),
    ("[control]\nidle_timeout_s = 0\n",
     "\(file):2: key 'control.idle_timeout_s': 0 is out of range 1...86400"),
    ("[daemon]\ndrain_timeout_ms = -5\n",
     "\(file):2: key 'daemon.drain_timeout_ms': -5 is out of range 0...60000"),
    ("[inspect]\nmode = \"score\"\nreported_neighbors = 65\n",
     "\(file):3: key 'inspect.reported_neighbors': 65 is out of range 0...64"),
    ("[log]\nlevel = \"verbose\"\n",
     "\(file):2: key 'log.level': unknown value 'verbose' (expected one of: trace, debug, info, notice, warning, error, critical)"),
    ("[log]\ntarget = \"syslog\"\n",
     "\(file):2: key 'log.target': unknown value 'syslog' (expected one of: auto, journald, stderr)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"http://example/stream\"\n",
     "\(file):3: key 'camera[0].source': unknown source scheme 'http' (expected v4l2:PATH, replay:DIR or belt:IMAGE)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"/dev/video0\"\n",
     "\(file):3: key 'camera[0].source': '/dev/video0' has no scheme (expected v4l2:PATH, replay:DIR or belt:IMAGE)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"replay:frames\"\n",
     "\(file):3: key 'camera[0].source': replay source path must be an absolute path, got 'frames'"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\n\n[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video1\"\n",
     "\(file):6: key 'camera[1].name': duplicate camera name 'cam0' (first used on line 2)"),
    ("[[camera]]\nsource = \"v4l2:/dev/video0\"\n",
     "\(file):1: key 'camera[0].name': missing (required)"),
    ("[[camera]]\nname = \"cam 0\"\nsource = \"v4l2:/dev/video0\"\n",
     "\(file):2: key 'camera[0].name': 'cam 0' is not a camera name (1 to 32 of A-Z a-z 0-9 _ -)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\nframerate = 30\n",
     "\(file):4: key 'camera[0].framerate': unknown key"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\nfps = 0\n",
     "\(file):4: key 'camera[0].fps': 0.0 is out of range 0.1...10000.0"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"belt:/x.png\"\nbelt_speed = \"fast\"\n",
     "\(file):4: key 'camera[0].belt_speed': expected number, found string"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"belt:/x.png\"\nbelt_color = [1, 2]\n",
     "\(file):4: key 'camera[0].belt_color': expected 3 numbers, found 2"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"belt:/x.png\"\nbelt_color = [1, 2, 300]\n",
     "\(file):4: key 'camera[0].belt_color': colour components are integers 0...255, got 300.0"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\npixel_format = \"mjpeg\"\n",
     "\(file):4: key 'camera[0].pixel_format': unknown value 'mjpeg' (expected one of: auto, rgb24, yuyv)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\nreopen_backoff_initial = 5\nreopen_backoff_max = 1\n",
     "\(file):5: key 'camera[0].reopen_backoff_max': 1.0 is less than reopen_backoff_initial (5.0)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\nsegmentation = \"otsu\"\n",
     "\(file):4: key 'camera[0].segmentation': unknown value 'otsu' (expected one of: default, tray, mindforge)"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\ndecision_line = 1.5\n",
     "\(file):4: key 'camera[0].decision_line': must be a fraction of the frame in (0, 1), got 1.5"),
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\nlanes = 0\n",
     "\(file):4: key 'camera[0].lanes': 0 is out of range 1...64"),
    ("[encoder]\nworkers = 0\n",
     "\(file):2: key 'encoder.workers': 0 is out of range 1...64"),
    ("[encoder]\nmean = [0.5, 0.5]\n",
     "\(file):2: key 'encoder.mean': expected 3 numbers, found 2"),
    ("[encoder]\nstd = [0.2, 0, 0.2]\n",
     "\(file):2: key 'encoder.std': must be greater than 0, got 0.0"),
    ("[encoder]\nmax_wait_ms = -1\n",
     "\(file):2: key 'encoder.max_wait_ms': -1.0 is out of range 0.0...1000.0"),
    ("[inspect]\nmode = \"majority\"\n",
     "\(file):2: key 'inspect.mode': unknown value 'majority' (expected one of: vote, one-class, score)"),
    ("[inspect]\nk = 65\n",
     "\(file):2: key 'inspect.k': 65 is out of range 1...64"),
    ("[inspect]\ngood_labels = []\n",
     "\(file):2: key 'inspect.good_labels': must name at least one label"),
    ("[inspect]\ngood_labels = [\"Normal\", 3]\n",
     "\(file):2: key 'inspect.good_labels': expected an array of strings, found an element of type integer"),
    ("[inspect]\nreject_share = 1.5\n",
     "\(file):2: key 'inspect.reject_share': must be a vote share in (0, 1], got 1.5"),
    ("[inspect]\nunknown_distance = 0\n",
     "\(file):2: key 'inspect.unknown_distance': must be greater than 0, got 0.0"),
    ("[inspect]\nunscored = \"drop\"\n",
     "\(file):2: key 'inspect.unscored': unknown value 'drop' (expected one of: reject-unscored, pass-unscored)"),
    ("[inspect]\nunknown_action = \"ignore\"\n",
     "\(file):2: key 'inspect.unknown_action': unknown value 'ignore' (expected one of: reject, accept)"),
    ("[rejects]\nring = 1\n",
     "\(file):2: key 'rejects.ring': 1 is out of range 16...1048576"),
    ("[camera]\nname = \"cam0\"\n",
     "\(file):1: key 'camera': expected an array of tables ([[camera]]), found table"),
    ("control = \"x\"\n",
     "\(file):1: key 'control': expected table, found string"),
    ("[control]\nsocket = \"/run/a.sock\"\n[rejects]\nsocket = \"/run/a.sock\"\n",
     "\(file):4: key 'rejects.socket': same path as control.socket ('/run/a.sock')"),
    ("[control]\ngroup = \"\"\n",
     "\(file):2: key 'control.group': must be a group name, got an empty string"),
    ("[control]\nsocket = \"/\(String(repeating: "s", count: 120))\"\n",
     "\(file):2: key 'control.socket': is 121 bytes long; a Unix socket path holds at most 107"),
    ("[store]\npath = 5\n",
     "\(file):2: key 'store.path': expected string, found integer"),
    ("[encoder]\nmodel = \"model.onnx\"\n",
     "\(file):2: key 'encoder.model': must be an absolute path, got 'model.onnx'"),
    ("# comment\n[control]\nsocket = \"/run/x.sock\n",
     "\(file):3: syntax error: Error while parsing string: unescaped control characters other than TAB (U+0009) are explicitly prohibited (column 22)"),
    ("[control]\nsocket = \"/a.sock\"\nsocket = \"/b.sock\"\n",
     "\(file):3: syntax error: Error while parsing key-value pair: cannot redefine existing string 'socket' (column 10)"),
    ("control.socket = \"relative\"\n",
     "\(file):1: key 'control.socket': must be an absolute path, got 'relative'"),
    ("[control]\nnotes = \"\"\"\nsocket = 1\n\"\"\"\nsocket = \"rel\"\n",
     "\(file):2: key 'control.notes': unknown key\n\(file):5: key 'control.socket': must be an absolute path, got 'rel'"),
]

@Test("bad config → exact PATH:LINE message", arguments: badConfigs.indices)
func badConfig(index: Int) {
    let (text, expected) = badConfigs[index]
    #expect(problems(text) == expected)
}

@Test func emptyDocumentIsAllDefaults() throws {
    #expect(try ConfigLoader.parse("", file: file) == DaemonConfig())
}

@Test func goodConfigRoundTrips() throws {
    let text = """
    [daemon]
    state_dir = "/srv/beand"
    drain_timeout_ms = 500
    [log]
    target = "journald"
    level = "debug"
    [control]
    socket = "/tmp/beand test/control.sock"
    group = "wheel"
    admin_group = "adm"
    idle_timeout_s = 5
    [rejects]
    socket = "/tmp/rejects.sock"
    group = "video"
    [store]
    path = "/srv/store"
    [encoder]
    model = "/srv/enc \\"v2\\".onnx"
    [[camera]]
    name = "left"
    source = "v4l2:/dev/video2"
    [[camera]]
    name = "right-1"
    source = "replay:/srv/replay"
    [[camera]]
    name = "belt_sim"
    source = "belt:/srv/tray.jpg"
    """
    let config = try ConfigLoader.parse(text, file: file)
    #expect(config.daemon.stateDirectory == "/srv/beand")
    #expect(config.daemon.drainTimeoutMilliseconds == 500)
    #expect(config.log.target == .journald)
    #expect(config.log.level == .debug)
    #expect(config.control.socket == "/tmp/beand test/control.sock")
    #expect(config.control.adminGroup == "adm")
    #expect(config.control.idleTimeoutSeconds == 5)
    #expect(config.rejects.group == "video")
    #expect(config.encoder.model == "/srv/enc \"v2\".onnx")
    #expect(config.cameras == [
        CameraConfig(name: "left", source: .v4l2(device: "/dev/video2")),
        CameraConfig(name: "right-1", source: .replay(directory: "/srv/replay")),
        CameraConfig(name: "belt_sim", source: .belt(image: "/srv/tray.jpg")),
    ])
    let rendered = config.renderedTOML
    #expect(try ConfigLoader.parse(rendered, file: "rendered") == config)
    #expect(try ConfigLoader.parse(DaemonConfig().renderedTOML, file: "defaults") == DaemonConfig())
}

@Test func missingFileNamesFileAndReason() {
    do {
        _ = try ConfigLoader.load(path: "/nonexistent/beand.toml")
        Issue.record("loading a missing file succeeded")
    } catch {
        #expect("\(error)" == "/nonexistent/beand.toml: cannot open: No such file or directory")
    }
}

@Test func lineIndexFollowsTablesAndArrays() {
    let index = TOMLLineIndex(text: """
    top = 1
    [a]
    x = 1
    [[cam]]
    name = "a"
    [[cam]]
      "quoted key" = 2
    inline = { k = 1 }
    [a.b]
    y.z = 3
    """)
    #expect(index.exactLine(for: ConfigKeyPath([.key("top")])) == 1)
    #expect(index.exactLine(for: ConfigKeyPath([.key("a"), .key("x")])) == 3)
    #expect(index.exactLine(for: ConfigKeyPath([.key("cam"), .index(0), .key("name")])) == 5)
    #expect(index.exactLine(for: ConfigKeyPath([.key("cam"), .index(1)])) == 6)
    #expect(index.exactLine(for: ConfigKeyPath([.key("cam"), .index(1), .key("quoted key")])) == 7)
    // Keys inside an inline table resolve to the line of the table's key.
    #expect(index.line(for: ConfigKeyPath([.key("cam"), .index(1), .key("inline"), .key("k")])) == 8)
    #expect(index.exactLine(for: ConfigKeyPath([.key("a"), .key("b"), .key("y"), .key("z")])) == 10)
}

@Test func pipelineKeysMapToEngineSettings() throws {
    let config = try ConfigLoader.parse("""
    [encoder]
    model = "/m.onnx"
    workers = 3
    max_batch = 8
    max_wait_ms = 1.5
    mean = [0, 0, 0]
    std = [1, 1, 1]
    [inspect]
    mode = "one-class"
    k = 7
    good_labels = ["Normal", "Light"]
    reject_share = 0.7
    one_class_distance = 0.25
    unknown_distance = 0.9
    unknown_action = "accept"
    unscored = "pass-unscored"
    queue = 4
    [rejects]
    ring = 128
    [[camera]]
    name = "belt"
    source = "belt:/srv/tray.png"
    width = 320
    height = 240
    fps = 90
    loop = false
    belt_speed = 1200
    belt_color = [10, 20, 30]
    segmentation = "tray"
    threshold = 33
    min_area = 99
    decision_line = 0.4
    lanes = 3
    pixels_per_metre = 2000
    ejector_distance_m = 0.05
    crop_size = 32
    """, file: "pipeline.toml")
    #expect(config.encoder.workers == 3 && config.encoder.maxBatch == 8 && config.encoder.maxWaitMilliseconds == 1.5)
    #expect(config.encoder.mean == [0, 0, 0] && config.encoder.std == [1, 1, 1])
    #expect(config.inspect.mode == .oneClass && config.inspect.k == 7 && config.inspect.goodLabels == ["Normal", "Light"])
    #expect(config.inspect.thresholds == Thresholds(defaultRejectShare: 0.7, oneClassDistance: 0.25, unknownDistance: 0.9))
    #expect(config.inspect.unknownAction == .accept && config.inspect.unscored == .passUnscored && config.inspect.queue == 4)
    #expect(config.rejects.ring == 128)
    let camera = try #require(config.cameras.first)
    let capture = camera.captureSettings
    #expect(capture.width == 320 && capture.height == 240 && capture.fps == 90 && !capture.loop && capture.beltSpeed == 1200)
    #expect(capture.beltColor.map { [$0.0, $0.1, $0.2] } == [10, 20, 30])
    #expect(camera.segmenterSettings.threshold == 33 && camera.segmenterSettings.minArea == 99)
    #expect(camera.segmenterSettings.closeRadius == SegmenterSettings.tray.closeRadius)
    let tracker = camera.trackerSettings
    #expect(tracker.decisionLine == 0.4 && tracker.laneCount == 3 && tracker.pixelsPerMetre == 2000)
    #expect(tracker.speedPixelsPerSecond == 1200 && !tracker.learnSpeed)
    #expect(camera.cropSize == 32)
    #expect(try ConfigLoader.parse(config.renderedTOML, file: "rendered") == config)
}

/// Score mode is a config value like the others, and its rendered form reads back the same.
@Test func scoreModeParsesAndRenders() throws {
    let config = try ConfigLoader.parse("""
    [inspect]
    mode = "score"
    k = 64
    reject_share = 0.62
    """, file: "score.toml")
    #expect(config.inspect.mode == .score)
    #expect(config.inspect.k == 64)
    #expect(config.inspect.thresholds.defaultRejectShare == 0.62)
    #expect(config.inspect.rendered.contains("mode = \"score\""))
    #expect(config.inspect.reportedNeighbors == 8, "the default bounds what a k = 64 reject event lists")
}

@Test func reportedNeighborsParsesAndRenders() throws {
    let config = try ConfigLoader.parse("[inspect]\nreported_neighbors = 0\n", file: "quiet.toml")
    #expect(config.inspect.reportedNeighbors == 0)
    let rendered = config.inspect.rendered
    #expect(rendered.contains("reported_neighbors = 0"))
    #expect(try ConfigLoader.parse(rendered, file: "rendered.toml").inspect.reportedNeighbors == 0)
}

/// Score mode over 64 neighbours is the default; an unset k follows the mode, a set one is kept,
/// and either renders to a document that parses back to the same configuration.
@Test func kFollowsTheModeUnlessSet() throws {
    let defaults = try ConfigLoader.parse("", file: "empty.toml")
    #expect(defaults.inspect.mode == .score && defaults.inspect.k == 64 && defaults.inspect.configuredK == nil)
    let vote = try ConfigLoader.parse("[inspect]\nmode = \"vote\"\n", file: "vote.toml")
    #expect(vote.inspect.k == 5)
    #expect(try ConfigLoader.parse("[inspect]\nmode = \"one-class\"\n", file: "oc.toml").inspect.k == 5)
    let set = try ConfigLoader.parse("[inspect]\nmode = \"score\"\nk = 9\n", file: "nine.toml")
    #expect(set.inspect.k == 9 && set.inspect.configuredK == 9)
    for config in [defaults, vote, set] {
        #expect(try ConfigLoader.parse(config.renderedTOML, file: "rendered.toml") == config)
    }
    #expect(defaults.inspect.rendered.contains("# k = 64 (the default in score mode)"))
}
