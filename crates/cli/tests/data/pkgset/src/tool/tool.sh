#!/bin/sh
echo tool "$@"
