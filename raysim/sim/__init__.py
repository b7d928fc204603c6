"""The simulation without Ray, in rooms: the kernel (kernel/), the cost model (cost/), the
optional features as stages (stages/), the round policies (policies/), client selection
(selection/), the kinds of run without a server (loops/), the bridges to Flower and vertical runs
(bridges/) and what is kept between rounds (state/)."""
