import Testing
@testable import BeanService

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
    ("[[camera]]\nname = \"cam0\"\nsource = \"v4l2:/dev/video0\"\nfps = 30\n",
     "\(file):4: key 'camera[0].fps': unknown key"),
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
