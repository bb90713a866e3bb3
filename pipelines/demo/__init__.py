"""Tools for trying and testing Flywheel: the demo event generator, the publisher and the local services.

Never imported by a stage.
"""
