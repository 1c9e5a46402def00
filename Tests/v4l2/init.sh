#!/bin/busybox sh
# /init of the vivid test initramfs (see Tests/v4l2/README.md). Loads the vivid module chain,
# runs v4l2-probe in two pixel formats, then pulls the device away mid-stream (sysfs unbind) and
# gives it back (bind) while the probe streams. Every line for the host starts with HARNESS or PROBE.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
echo "HARNESS boot kernel=$(uname -r)"

for m in $(cat /modules.order); do
  args=""
  # One capture node only (node_types bit 0), so /dev/video0 is the capture device.
  [ "$(basename "$m")" = "vivid.ko" ] && args="n_devs=1 node_types=0x1"
  insmod "/lib/modules/$m" $args || echo "HARNESS insmod-failed module=$m"
done

i=0
while [ ! -e /dev/video0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
if [ ! -e /dev/video0 ]; then
  echo "HARNESS error=no-video0"; dmesg | tail -20; reboot -f
fi
DEV=$(basename "$(ls -d /sys/bus/platform/drivers/vivid/vivid* | head -1)")
echo "HARNESS video0 platform_device=$DEV"
# A stable name, as udev would make it, so the probe also exercises by-path lookup on reopen.
mkdir -p /dev/v4l/by-path
ln -s /dev/video0 /dev/v4l/by-path/platform-vivid-video-index0

/probe/v4l2-probe capture /dev/video0 rgb24 40; echo "HARNESS probe=capture-rgb24 rc=$?"
/probe/v4l2-probe capture /dev/video0 yuyv 40; echo "HARNESS probe=capture-yuyv rc=$?"

/probe/v4l2-probe loss platform-vivid-video-index0 &
P=$!
i=0
while [ ! -e /tmp/probe-streaming ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "$DEV" > /sys/bus/platform/drivers/vivid/unbind && echo "HARNESS unbound device=$DEV"
i=0
while [ ! -e /tmp/probe-lost ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
sleep 1
echo "$DEV" > /sys/bus/platform/drivers/vivid/bind && echo "HARNESS bound device=$DEV"
wait $P; echo "HARNESS probe=loss rc=$?"

# exit_on_loss: the same unbind must end the stream with an error instead of a reopen.
rm -f /tmp/probe-streaming /tmp/probe-lost
/probe/v4l2-probe exit-on-loss platform-vivid-video-index0 &
P=$!
i=0
while [ ! -e /tmp/probe-streaming ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "$DEV" > /sys/bus/platform/drivers/vivid/unbind && echo "HARNESS unbound-again device=$DEV"
wait $P; echo "HARNESS probe=exit-on-loss rc=$?"
echo "HARNESS done"
reboot -f
